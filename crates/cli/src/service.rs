//! `gridmint provider install-service|uninstall-service`: a provider that starts at every login
//! and restarts when it fails — a systemd user unit on Linux, a launchd agent on macOS — run
//! from a config file (written from `examples/provider.toml` when there is none).

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit's name (systemd) and the agent's label (launchd).
pub const UNIT: &str = "gridmint-provider.service";
pub const LABEL: &str = "org.gridmint.provider";

/// The documented example, the template of a config file written by `install-service`.
const EXAMPLE: &str = include_str!("../../../examples/provider.toml");
const EXAMPLE_COORDINATOR: &str = "coordinator = \"http://127.0.0.1:7070\"\n";
const EXAMPLE_DATA_DIR: &str = "# data_dir = \"gridmint-data/provider\"\n";

fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .context("HOME is not set: cannot tell where a user service goes")
}

fn xdg(var: &str, fallback: &str) -> anyhow::Result<PathBuf> {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(home()?.join(fallback)),
    }
}

/// Where the service's config file goes by default.
pub fn default_config() -> anyhow::Result<PathBuf> {
    Ok(xdg("XDG_CONFIG_HOME", ".config")?.join("gridmint/provider.toml"))
}

fn unit_path() -> anyhow::Result<PathBuf> {
    if cfg!(target_os = "macos") {
        Ok(home()?.join(format!("Library/LaunchAgents/{LABEL}.plist")))
    } else {
        Ok(xdg("XDG_CONFIG_HOME", ".config")?
            .join("systemd/user")
            .join(UNIT))
    }
}

/// `examples/provider.toml` with `coordinator` and an absolute `data_dir` filled in.
pub fn config_text(coordinator: &str, data_dir: &Path) -> String {
    let quote = |s: &str| toml::Value::String(s.to_string()).to_string();
    EXAMPLE
        .replacen(
            EXAMPLE_COORDINATOR,
            &format!("coordinator = {}\n", quote(coordinator)),
            1,
        )
        .replacen(
            EXAMPLE_DATA_DIR,
            &format!("data_dir = {}\n", quote(&data_dir.to_string_lossy())),
            1,
        )
}

/// A systemd user unit running `exe provider --config config`.
pub fn systemd_unit(exe: &Path, config: &Path) -> String {
    // systemd expands '%' specifiers, and takes arguments in double quotes.
    let arg = |p: &Path| {
        format!(
            "\"{}\"",
            p.to_string_lossy()
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('%', "%%")
        )
    };
    format!(
        "[Unit]\n\
         Description=Gridmint provider: lends this machine's idle time to the Gridmint network\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exe} provider --config {config}\n\
         Restart=on-failure\n\
         RestartSec=10s\n\
         # Tasks give way to everything else on the machine.\n\
         Nice=19\n\
         CPUSchedulingPolicy=idle\n\
         IOSchedulingClass=idle\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exe = arg(exe),
        config = arg(config),
    )
}

/// A launchd agent running `exe provider --config config`.
pub fn launchd_plist(exe: &Path, config: &Path, log: &Path) -> String {
    let esc = |p: &Path| {
        p.to_string_lossy()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>Label</key><string>{LABEL}</string>
  <key>ProgramArguments</key>
  <array><string>{exe}</string><string>provider</string><string>--config</string><string>{config}</string></array>
  <key>RunAtLoad</key><true/>
  <key>KeepAlive</key><dict><key>SuccessfulExit</key><false/></dict>
  <key>ProcessType</key><string>Background</string>
  <key>Nice</key><integer>19</integer>
  <key>StandardOutPath</key><string>{log}</string>
  <key>StandardErrorPath</key><string>{log}</string>
</dict>
</plist>
"#,
        exe = esc(exe),
        config = esc(config),
        log = esc(log),
    )
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn install(
    config: Option<PathBuf>,
    coordinator: Option<String>,
    no_start: bool,
) -> anyhow::Result<()> {
    let config = match config {
        Some(path) => std::path::absolute(path)?,
        None => default_config()?,
    };
    if !config.exists() {
        let coordinator = coordinator.with_context(|| {
            format!(
                "{} does not exist: pass --coordinator URL to write it (or --config FILE)",
                config.display()
            )
        })?;
        let data_dir = xdg("XDG_DATA_HOME", ".local/share")?.join("gridmint/provider");
        if let Some(dir) = config.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&config, config_text(&coordinator, &data_dir))
            .with_context(|| format!("writing {}", config.display()))?;
        println!(
            "wrote {} (edit it to change the idle rules)",
            config.display()
        );
    } else if coordinator.is_some() {
        bail!(
            "{} exists: edit its `coordinator` rather than passing --coordinator",
            config.display()
        );
    }
    // The file must work before a service runs it.
    crate::provider_config::provider(Some(&config), Default::default())?;
    let exe = std::env::current_exe().context("the path of this gridmint binary")?;
    let unit = unit_path()?;
    if let Some(dir) = unit.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let macos = cfg!(target_os = "macos");
    let text = if macos {
        let log = home()?.join("Library/Logs/gridmint-provider.log");
        launchd_plist(&exe, &config, &log)
    } else {
        systemd_unit(&exe, &config)
    };
    std::fs::write(&unit, text).with_context(|| format!("writing {}", unit.display()))?;
    println!("wrote {}", unit.display());
    if no_start {
        return Ok(());
    }
    let unit_text = unit.to_string_lossy().into_owned();
    let started = if macos {
        run("launchctl", &["load", "-w", &unit_text])
    } else {
        run("systemctl", &["--user", "daemon-reload"])
            .and_then(|()| run("systemctl", &["--user", "enable", "--now", UNIT]))
    };
    started.with_context(|| {
        format!(
            "the service files are written, but the service manager did not start it; in your \
             login session run {}",
            if macos {
                format!("`launchctl load -w {unit_text}`")
            } else {
                format!("`systemctl --user daemon-reload && systemctl --user enable --now {UNIT}`")
            }
        )
    })?;
    println!(
        "the provider runs now and at every login; `gridmint provider status --data-dir DIR` \
         (DIR: data_dir in {}) shows what it does",
        config.display()
    );
    Ok(())
}

pub fn uninstall(no_stop: bool) -> anyhow::Result<()> {
    let unit = unit_path()?;
    if !unit.exists() {
        bail!("no service installed ({} does not exist)", unit.display());
    }
    let macos = cfg!(target_os = "macos");
    if !no_stop {
        let unit_text = unit.to_string_lossy().into_owned();
        let stopped = if macos {
            run("launchctl", &["unload", "-w", &unit_text])
        } else {
            run("systemctl", &["--user", "disable", "--now", UNIT])
        };
        if let Err(e) = stopped {
            eprintln!("warning: {e:#}; removing the files anyway");
        }
    }
    std::fs::remove_file(&unit).with_context(|| format!("removing {}", unit.display()))?;
    if !macos && !no_stop {
        let _ = run("systemctl", &["--user", "daemon-reload"]);
    }
    println!("removed {} (the config file and data stay)", unit.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_config_is_the_example_with_the_network_and_an_absolute_data_dir() {
        assert!(EXAMPLE.contains(EXAMPLE_COORDINATOR));
        assert!(EXAMPLE.contains(EXAMPLE_DATA_DIR));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("provider.toml");
        let data = dir.path().join("data \"quoted\"");
        std::fs::write(&path, config_text("https://net.example:7070", &data)).unwrap();
        let c = crate::provider_config::provider(Some(&path), Default::default()).unwrap();
        assert_eq!(c.coordinator, "https://net.example:7070");
        assert_eq!(c.data_dir, data);
        assert_eq!(c.idle, provider::idle::IdleRules::default());
    }

    #[test]
    fn the_unit_quotes_paths_and_escapes_specifiers() {
        let unit = systemd_unit(
            Path::new("/opt/grid mint/gridmint"),
            Path::new("/h/100%.toml"),
        );
        assert!(unit.contains(
            "ExecStart=\"/opt/grid mint/gridmint\" provider --config \"/h/100%%.toml\"\n"
        ));
        assert!(unit.contains("Restart=on-failure") && unit.contains("WantedBy=default.target"));
        let plist = launchd_plist(Path::new("/a&b"), Path::new("/c"), Path::new("/l"));
        assert!(plist.contains("<string>/a&amp;b</string>"));
    }
}
