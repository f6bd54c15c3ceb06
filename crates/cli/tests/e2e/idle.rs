//! Providers for everyone (issue 19): a provider works only while its owner's rules allow —
//! scripted sensors stand in for the keyboard, the battery and the clock — pauses its task in
//! place and finishes it alike, takes no work while suspended, hands its tasks back past the
//! grace period, answers `gridmint provider status|pause|resume`, and holds to its CPU share.

use crate::support::*;
use engine::JobStatus;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Samples of the one pi task these tests run: about seven seconds of work on a test machine
/// (some 200 million a second).
const SAMPLES: u64 = 1_500_000_000;

/// A pi job of one task of `samples`, run once, with fuel for it (pi needs 75 a sample)
/// and no more, so that its escrow stays within what the faucet gives.
fn pi_job(w: &World, name: &str, samples: u64) -> PathBuf {
    let spec = pi_spec(samples, 1).replace(
        &format!("fuel = {}", samples * 1000 + 100_000_000),
        &format!("fuel = {}", samples * 150 + 100_000_000),
    );
    assert!(spec.contains(&format!("fuel = {}", samples * 150 + 100_000_000)));
    w.write(name, spec)
}

fn long_job(w: &World, name: &str) -> PathBuf {
    pi_job(w, name, SAMPLES)
}

/// Scripts the provider's sensors: `json`'s readings, on a Wednesday at noon unless it says
/// otherwise (the real clock would make a test of the weekly schedule depend on the day).
fn sense(path: &Path, json: &str) {
    let mut readings: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).unwrap();
    readings.entry("weekday").or_insert(2.into());
    readings.entry("minute").or_insert(720.into());
    // Written whole and renamed: the provider never reads half a script.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&readings).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn status(w: &World, dir: &Path) -> serde_json::Value {
    w.cli(&[
        "provider",
        "status",
        "--json",
        "--data-dir",
        dir.to_str().unwrap(),
    ])
    .ok()
    .json()
}

/// Waits until the provider's status satisfies `f`; returns it and how long that took.
fn wait_status(
    w: &World,
    dir: &Path,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, Duration) {
    let start = Instant::now();
    let s = poll(what, Duration::from_secs(30), || {
        let s = status(w, dir);
        f(&s).then_some(s)
    });
    (s, start.elapsed())
}

fn reasons(s: &serde_json::Value) -> Vec<String> {
    s["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_string())
        .collect()
}

/// CPU ticks (user + system) of process `pid` and of its live children (the sandbox's worker
/// processes, which run its guests) so far.
fn cpu_ticks(pid: u32) -> u64 {
    let ticks = |pid: u32| {
        provider::idle::process_cpu_ticks(Path::new(&format!("/proc/{pid}/stat"))).unwrap_or(0)
    };
    ticks(pid) + children(pid).into_iter().map(ticks).sum::<u64>()
}

/// The live children of process `pid`.
fn children(pid: u32) -> Vec<u32> {
    provider::idle::child_pids(&pid.to_string())
}

fn ticks_per_second() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100.0)
}

/// A one-slot provider whose idle rules are `config`'s and whose sensors are scripted (idle at
/// first), active on `c`: it, its data dir and its sensors' script.
fn scripted_provider(w: &World, c: &Coordinator, config: &str) -> (Provider, PathBuf, PathBuf) {
    let (dir, id) = w.provider_dir();
    let sensors = w.root().join("sensors.json");
    sense(&sensors, r#"{"idle_seconds": 3600}"#);
    let config = w.write("provider.toml", config);
    let p = w.spawn_provider(
        &c.url,
        &dir,
        id,
        1,
        &[
            "--sensors",
            sensors.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    p.wait_active(&c.http);
    (p, dir, sensors)
}

#[test]
fn a_suspended_provider_pauses_its_task_in_place_takes_no_work_and_finishes_alike() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let (p, dir, sensors) = scripted_provider(
        &w,
        &c,
        "[idle]\nhours = [\"mon-fri\"]\n[energy]\ngrams_per_kwh = 30\n",
    );
    let pid = p.proc.pid();
    // Its owner's carbon intensity, announced (rules 24).
    let view = c.http.provider(p.id).unwrap();
    assert_eq!(view.grams_per_kwh, Some(30), "{view:?}");
    assert!(view.suspended.is_empty());

    // A long task starts; the owner touches the keyboard.
    let first = w.submit(&c.url, &long_job(&w, "a.toml"));
    wait_status(&w, &dir, "working", |s| s["state"] == "working");
    std::thread::sleep(Duration::from_millis(300));
    sense(&sensors, r#"{"idle_seconds": 0}"#);
    let (s, took) = wait_status(&w, &dir, "suspended", |s| s["state"] == "suspended");
    assert_eq!(reasons(&s), ["owner_active"], "{s}");
    eprintln!("suspended {took:?} after the input (status polled through the CLI)");
    assert!(
        took < Duration::from_secs(2),
        "suspended {took:?} after the input"
    );
    assert_eq!(s["tasks_in_flight"], 1, "{s}");
    // The network is told, and why (rules 24): the scheduler counts on it no more.
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.http.provider(p.id).unwrap().suspended.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        c.http.provider(p.id).unwrap().suspended,
        [engine::Suspension::OwnerActive]
    );
    let info = w
        .cli(&[
            "provider",
            "info",
            &p.id.to_string(),
            "--coordinator",
            &c.url,
        ])
        .ok()
        .stdout;
    assert!(
        info.contains("suspended  by its owner's rules (owner active)")
            && info.contains("carbon     30 g CO2e per kWh"),
        "{info}"
    );

    // Paused in place: for longer than the whole task takes, it uses next to no CPU and the
    // job does not finish.
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(4));
    let used = (cpu_ticks(pid) - before) as f64 / ticks_per_second();
    assert!(
        used < 0.5,
        "a suspended provider used {used} s of CPU in 4 s"
    );
    assert_eq!(c.http.job(first).status, JobStatus::Running);

    // Idle again: it goes on, and ends as a run never paused does.
    sense(&sensors, r#"{"idle_seconds": 3600}"#);
    let paused = c.http.wait_completed(first);
    let again = w.submit(&c.url, &long_job(&w, "b.toml"));
    let plain = c.http.wait_completed(again);
    let (a, b) = (
        &c.http.job_with_tasks(first).tasks[0],
        &c.http.job_with_tasks(again).tasks[0],
    );
    assert!(a.output_hash.is_some() && a.fuel_used.is_some());
    assert_eq!(
        (a.output_hash, a.fuel_used),
        (b.output_hash, b.fuel_used),
        "{paused:?} {plain:?}"
    );
    assert_eq!(c.http.output(first), pi_output(SAMPLES, 1).into_bytes());

    // Each rule through the scripted sensors; while any holds, a new job gets no provider.
    sense(&sensors, r#"{"idle_seconds": 3600, "on_battery": true}"#);
    let (s, _) = wait_status(&w, &dir, "on battery", |s| s["state"] == "suspended");
    assert_eq!(reasons(&s), ["on_battery"]);
    // A job that prefers low-carbon providers (rules 24): this one's 30 g/kWh is, when it may
    // work again.
    let third = w.submit(
        &c.url,
        &w.write(
            "c.toml",
            pi_spec(1000, 1) + "\n[requirements]\nprefer_low_carbon = true\n",
        ),
    );
    assert!(c.http.job(third).prefer_low_carbon);
    std::thread::sleep(Duration::from_secs(3));
    let view = c.http.job_with_tasks(third);
    assert_eq!(view.tasks[0].state, "queued", "{view:?}");
    assert!(view.tasks[0].runs.is_empty(), "{view:?}");
    for (script, reason) in [
        (
            r#"{"idle_seconds": 3600, "battery_percent": 12}"#,
            "battery_low",
        ),
        // Saturday, noon: outside "mon-fri".
        (
            r#"{"idle_seconds": 3600, "weekday": 5, "minute": 720}"#,
            "outside_hours",
        ),
    ] {
        sense(&sensors, script);
        let (s, _) = wait_status(&w, &dir, reason, |s| reasons(s) == [reason]);
        assert_eq!(s["state"], "suspended");
    }
    assert_eq!(c.http.job_with_tasks(third).tasks[0].state, "queued");

    // By hand: paused until resumed, whatever the sensors say.
    sense(&sensors, r#"{"idle_seconds": 3600}"#);
    let dir_s = dir.to_str().unwrap();
    let paused = w
        .cli(&["provider", "pause", "--data-dir", dir_s, "--json"])
        .ok()
        .json();
    assert_eq!(reasons(&paused)[0], "paused_by_owner", "{paused}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(c.http.job_with_tasks(third).tasks[0].state, "queued");
    let text = w
        .cli(&["provider", "status", "--data-dir", dir_s])
        .ok()
        .stdout;
    assert!(text.contains("paused by its owner"), "{text}");
    assert!(text.contains("earned"), "{text}");
    assert!(text.contains("kWh") && text.contains("CO2e"), "{text}");
    assert!(text.lines().all(|l| !l.starts_with(' ')), "{text}");
    w.cli(&["provider", "resume", "--data-dir", dir_s]).ok();
    c.http.wait_completed(third);
    let (s, _) = wait_status(&w, &dir, "waiting", |s| s["state"] == "waiting");
    assert_eq!(s["tasks_run"], 3, "{s}");
    // Each run's energy is counted (estimated here: no readable RAPL in a test machine, or
    // measured): three runs, the two long ones at several seconds of a core each.
    assert_eq!(s["energy"]["runs"], 3, "{s}");
    assert!(s["energy"]["kwh"].as_f64().unwrap() > 0.0, "{s}");
    assert!(reasons(&s).is_empty());
    assert!(c.http.provider(p.id).unwrap().suspended.is_empty());

    // Each job's energy is its accepted run's, signed in the provider's report (rules 24), and
    // its carbon that energy at the intensity the provider announced; together they are what
    // the provider counted.
    let mut millijoules = 0;
    for job in [first, again, third] {
        let view = c.http.job(job);
        let energy = view.energy.expect("a job's energy");
        assert_eq!((energy.runs, energy.unreported), (1, 0), "{view:?}");
        // The two long runs took seconds of a core; the third, a thousand samples, less than
        // a millijoule.
        assert!(energy.millijoules > 0 || job == third, "{view:?}");
        assert_eq!(
            u128::from(energy.co2e_micrograms),
            u128::from(energy.millijoules) * 30 / 3600
        );
        millijoules += energy.millijoules;
    }
    let counted = s["energy"]["kwh"].as_f64().unwrap() * 3.6e9;
    assert!(
        (millijoules as f64 - counted).abs() <= 3.0,
        "jobs {millijoules} mJ, provider {counted} mJ"
    );
    let json = w
        .cli(&[
            "job",
            "status",
            &first.to_string(),
            "--coordinator",
            &c.url,
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(json["energy"]["runs"], 1, "{json}");
    let text = w
        .cli(&["job", "status", &first.to_string(), "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(
        text.contains("kWh") && text.contains("g CO2e (1 runs"),
        "{text}"
    );
}

#[test]
fn a_provider_suspended_past_its_grace_period_hands_its_task_back_and_it_completes_elsewhere() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let (mut p, dir, sensors) = scripted_provider(&w, &c, "[idle]\ngrace = \"2s\"\n");
    let id = p.id;
    let job = w.submit(&c.url, &long_job(&w, "a.toml"));
    wait_status(&w, &dir, "working", |s| s["state"] == "working");
    // Another provider joins; the owner of the first comes back to work.
    let other = w.provider(&c, 1);
    sense(&sensors, r#"{"idle_seconds": 0}"#);
    let (s, took) = wait_status(&w, &dir, "handed back", |s| s["state"] == "handed_back");
    assert!(took >= Duration::from_secs(2), "handed back after {took:?}");
    eprintln!("handed back {took:?} after the input (grace 2 s)");
    assert_eq!(s["tasks_in_flight"], 0, "{s}");
    assert_eq!(
        c.http.provider(id).map(|v| v.status),
        Some(engine::ProviderStatus::Left)
    );
    let view = c.http.wait_completed(job);
    let task = &c.http.job_with_tasks(job).tasks[0];
    assert_eq!(task.providers, [other.id], "{view:?}");
    assert_eq!(c.http.output(job), pi_output(SAMPLES, 1).into_bytes());

    // Idle again: it registers again and waits for work.
    sense(&sensors, r#"{"idle_seconds": 3600}"#);
    wait_status(&w, &dir, "waiting", |s| s["state"] == "waiting");
    p.wait_active(&c.http);
    assert!(p.proc.alive());
}

#[test]
fn a_provider_held_to_half_a_core_uses_half_a_core() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let (dir, id) = w.provider_dir();
    let p = w.spawn_provider(&c.url, &dir, id, 1, &["--cpu-percent", "50"]);
    p.wait_active(&c.http);
    // Long enough to keep the slot busy through the measurement at half speed.
    let job = w.submit(&c.url, &pi_job(&w, "a.toml", SAMPLES * 3));
    wait_status(&w, &dir, "working", |s| s["state"] == "working");
    std::thread::sleep(Duration::from_secs(1));
    let pid = p.proc.pid();
    // The sandbox's worker process, which runs the task: its thread's time on a CPU and its
    // time waiting for one (/proc/PID/schedstat). Time spent waiting for a core while other
    // tests keep the machine busy is neither work nor rest, so the share is of the time it
    // worked or rested (stopped by the provider's signals, or sleeping).
    let worker = children(pid)
        .into_iter()
        .find(|c| {
            std::fs::read(format!("/proc/{c}/cmdline"))
                .is_ok_and(|cmd| String::from_utf8_lossy(&cmd).contains("sandbox-worker"))
        })
        .expect("the provider's sandbox worker process");
    let slot = Path::new(&format!("/proc/{worker}")).to_path_buf();
    let sched = || -> (f64, f64) {
        let text = std::fs::read_to_string(slot.join("schedstat")).unwrap();
        let f: Vec<f64> = text
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        (f[0] / 1e9, f[1] / 1e9)
    };
    let (t0, c0, (run0, wait0)) = (Instant::now(), cpu_ticks(pid), sched());
    std::thread::sleep(Duration::from_secs(10));
    let (run1, wait1) = sched();
    let wall = t0.elapsed().as_secs_f64();
    let process = (cpu_ticks(pid) - c0) as f64 / ticks_per_second() / wall;
    let share = (run1 - run0) / (wall - (wait1 - wait0));
    eprintln!(
        "held to 50% of a core: the slot worked {:.1}% of the time it worked or rested; the \
         process used {:.1}% of a core over {wall:.1} s",
        share * 100.0,
        process * 100.0
    );
    assert_eq!(
        c.http.job(job).status,
        JobStatus::Running,
        "the task ended before the measurement did"
    );
    assert!(
        (0.45..=0.55).contains(&share),
        "a provider held to 50% of a core worked {:.1}% of its time",
        share * 100.0
    );
    assert!(
        process <= 0.6,
        "the process used {:.1}% of a core",
        process * 100.0
    );
    let s = status(&w, &dir);
    assert_eq!(s["cpu_percent"], 50, "{s}");
}

#[test]
fn status_without_a_running_provider_says_so() {
    let w = World::new();
    let dir = w.dir("nobody");
    let ran = w
        .cli(&["provider", "status", "--data-dir", dir.to_str().unwrap()])
        .fails();
    assert!(
        ran.stderr.contains("no provider is running"),
        "{}",
        ran.stderr
    );
}

#[test]
fn install_service_writes_a_unit_and_a_config_that_work() {
    let w = World::new();
    let config_home = w.dir("config");
    let data_home = w.dir("data");
    let env = [
        ("HOME", w.root().to_str().unwrap()),
        ("XDG_CONFIG_HOME", config_home.to_str().unwrap()),
        ("XDG_DATA_HOME", data_home.to_str().unwrap()),
    ];
    // No config yet, no network named: refused, nothing written.
    let ran = w
        .cli_env(&["provider", "install-service", "--no-start"], &env)
        .fails();
    assert!(ran.stderr.contains("--coordinator"), "{}", ran.stderr);
    let unit = config_home.join("systemd/user/gridmint-provider.service");
    assert!(!unit.exists());

    w.cli_env(
        &[
            "provider",
            "install-service",
            "--no-start",
            "--coordinator",
            "http://127.0.0.1:7070",
        ],
        &env,
    )
    .ok();
    let config = config_home.join("gridmint/provider.toml");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Restart=on-failure"), "{text}");
    assert!(
        text.contains(&format!("--config \"{}\"", config.display())),
        "{text}"
    );
    let written = std::fs::read_to_string(&config).unwrap();
    assert!(written.contains(&format!(
        "data_dir = \"{}\"",
        data_home.join("gridmint/provider").display()
    )));
    // `provider status` with no --data-dir asks the provider that config file runs.
    let ran = w.cli_env(&["provider", "status"], &env).fails();
    assert!(
        ran.stderr
            .contains(&data_home.join("gridmint/provider").display().to_string()),
        "{}",
        ran.stderr
    );
    // Where systemd is installed, it finds nothing wrong with the unit.
    if let Ok(out) = std::process::Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&unit)
        .output()
    {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains(&unit.display().to_string()),
            "systemd-analyze verify: {stderr}"
        );
    }
    // Installing again keeps the owner's config; naming another network is refused.
    let ran = w
        .cli_env(
            &[
                "provider",
                "install-service",
                "--no-start",
                "--coordinator",
                "http://x",
            ],
            &env,
        )
        .fails();
    assert!(ran.stderr.contains("exists"), "{}", ran.stderr);
    assert_eq!(std::fs::read_to_string(&config).unwrap(), written);

    w.cli_env(&["provider", "uninstall-service", "--no-stop"], &env)
        .ok();
    assert!(!unit.exists() && config.exists());
    let ran = w
        .cli_env(&["provider", "uninstall-service", "--no-stop"], &env)
        .fails();
    assert!(
        ran.stderr.contains("no service installed"),
        "{}",
        ran.stderr
    );
}
