//! `gridmint provider --config FILE`: a provider's settings as TOML, its idle rules included.
//! Every key is optional; a flag wins over the file; anything in neither gets the default.
//! `examples/provider.toml` lists and explains every key.

use anyhow::{Context, bail};
use jobspec::Size;
use provider::idle::{IdleRules, Schedule};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file. Paths in it are relative to the file's own directory.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderFile {
    pub coordinator: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub slots: Option<u32>,
    pub memory: Option<Size>,
    pub cache_size: Option<Size>,
    pub region: Option<String>,
    pub price: Option<u128>,
    pub gpu_price: Option<u128>,
    pub gpu: Option<String>,
    pub no_gpu: Option<bool>,
    pub operator: Option<String>,
    /// Where to serve the provider's Prometheus metrics ("127.0.0.1:9101"; default: nowhere).
    pub metrics: Option<std::net::SocketAddr>,
    pub idle: IdleFile,
    pub energy: EnergyFile,
}

/// `[energy]`: how runs' energy and carbon are counted.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnergyFile {
    /// Read the CPU's energy counters (RAPL) where they can be read (true).
    pub rapl: Option<bool>,
    /// The model's power per core at full load, in watts (12).
    pub watts_per_core: Option<f64>,
    /// The model's power per GiB of memory, in watts (0.4).
    pub watts_per_gib: Option<f64>,
    /// The GPU's power while it runs a task, in watts (default: 200 for a discrete GPU, 15
    /// for an integrated one, every core at `watts_per_core` for a software one).
    pub gpu_watts: Option<f64>,
    /// Grams of CO2e per kWh of this machine's electricity, announced to the network (default:
    /// the network's figure for the provider's region).
    pub grams_per_kwh: Option<f64>,
}

/// `[idle]`: when the machine's owner lets it work.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdleFile {
    /// A machine kept for the network: no rule below suspends it (false).
    pub dedicated: Option<bool>,
    /// Suspend while there was keyboard or mouse input within this long ("3m"; "0s": never).
    pub idle_after: Option<String>,
    /// Suspend while other programs use more than this percent of the CPU (50; 100: never).
    pub max_other_load_percent: Option<u8>,
    /// Suspend while on battery (true).
    pub suspend_on_battery: Option<bool>,
    /// Suspend while the battery is below this percent (20; 0: never).
    pub min_battery_percent: Option<u8>,
    /// Work only within these hours, local time (every hour).
    pub hours: Option<Vec<String>>,
    /// The share of a core's time each task slot may use (100).
    pub cpu_percent: Option<u8>,
    /// How long a suspension may last before the tasks in hand go back to the network ("60s").
    pub grace: Option<String>,
}

/// Settings given as flags (`None`: not given).
#[derive(Debug, Default)]
pub struct ProviderFlags {
    pub coordinator: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub slots: Option<u32>,
    pub memory: Option<u64>,
    pub cache_size: Option<u64>,
    pub region: Option<String>,
    pub price: Option<u128>,
    pub gpu_price: Option<u128>,
    pub gpu: Option<String>,
    pub no_gpu: bool,
    pub operator: Option<engine::AccountId>,
    pub dedicated: bool,
    pub cpu_percent: Option<u8>,
    pub metrics: Option<std::net::SocketAddr>,
}

/// The default data directory.
pub const DEFAULT_DATA_DIR: &str = "gridmint-data/provider";

fn duration(key: &str, value: &Option<String>) -> anyhow::Result<Option<Duration>> {
    value
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s)
                .with_context(|| format!("{key} = {s:?} is not a duration like \"3m\" or \"60s\""))
        })
        .transpose()
}

fn percent(key: &str, value: Option<u8>) -> anyhow::Result<Option<u8>> {
    match value {
        Some(p) if p > 100 => bail!("{key} = {p} is not a percentage (0 to 100)"),
        other => Ok(other),
    }
}

/// Reads `path` (if any) and merges: flag, then file, then default.
pub fn provider(
    path: Option<&Path>,
    flags: ProviderFlags,
) -> anyhow::Result<provider::ProviderConfig> {
    let (file, base) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let file: ProviderFile = toml::from_str(&text)
                .context("parsing TOML")
                .with_context(|| format!("config {}", path.display()))?;
            (
                file,
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        }
        None => (ProviderFile::default(), PathBuf::new()),
    };
    let merge = || -> anyhow::Result<provider::ProviderConfig> {
        let coordinator = flags.coordinator.or(file.coordinator).context(
            "no coordinator: pass --coordinator URL (or GRIDMINT_COORDINATOR), or set \
             `coordinator` in the config file",
        )?;
        let data_dir = flags
            .data_dir
            .or_else(|| file.data_dir.as_ref().map(|d| base.join(d)))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let mut config = provider::ProviderConfig::new(&coordinator, data_dir);
        config.sandbox_worker = crate::sandbox_worker();
        if let Some(slots) = flags.slots.or(file.slots) {
            if slots == 0 {
                bail!("slots = 0: a provider needs at least one task slot");
            }
            config.slots = slots;
        }
        if let Some(memory) = flags
            .memory
            .map(Ok)
            .or(file.memory.as_ref().map(|m| m.bytes().context("memory")))
        {
            config.memory_bytes = memory?;
        }
        if let Some(cache) = flags.cache_size.map(Ok).or(file
            .cache_size
            .as_ref()
            .map(|m| m.bytes().context("cache_size")))
        {
            config.cache_bytes = cache?;
        }
        if let Some(region) = flags.region.or(file.region) {
            config.region = region;
        }
        if let Some(price) = flags.price.or(file.price) {
            config.price_per_fuel = price;
        }
        config.gpu_price_per_fuel = flags.gpu_price.or(file.gpu_price);
        let no_gpu = flags.no_gpu || file.no_gpu.unwrap_or(false);
        config.gpu = if no_gpu { None } else { flags.gpu.or(file.gpu) };
        config.detect_gpu = !no_gpu;
        config.operator = match (flags.operator, &file.operator) {
            (Some(op), _) => Some(op),
            (None, Some(text)) => Some(
                text.parse()
                    .map_err(|e| anyhow::anyhow!("operator = {text:?}: {e}"))?,
            ),
            (None, None) => None,
        };
        config.idle = idle_rules(&file.idle, flags.dedicated, flags.cpu_percent)?;
        config.energy = energy(&file.energy)?;
        config.metrics = flags.metrics.or(file.metrics);
        Ok(config)
    };
    match path {
        Some(path) => merge().with_context(|| format!("config {}", path.display())),
        None => merge(),
    }
}

fn energy(file: &EnergyFile) -> anyhow::Result<provider::energy::EnergyConfig> {
    let defaults = provider::energy::EnergyConfig::default();
    let figure = |key: &str, value: Option<f64>, default: f64| match value {
        Some(v) if v.is_finite() && (0.0..=1e6).contains(&v) => Ok(v),
        Some(v) => bail!("energy.{key} = {v} is not a figure from 0 to 1000000"),
        None => Ok(default),
    };
    Ok(provider::energy::EnergyConfig {
        rapl: file.rapl.unwrap_or(defaults.rapl),
        watts_per_core: figure(
            "watts_per_core",
            file.watts_per_core,
            defaults.watts_per_core,
        )?,
        watts_per_gib: figure("watts_per_gib", file.watts_per_gib, defaults.watts_per_gib)?,
        gpu_watts: match file.gpu_watts {
            Some(v) if v.is_finite() && (0.0..=10_000.0).contains(&v) => Some(v),
            Some(v) => bail!("energy.gpu_watts = {v} is not a figure from 0 to 10000"),
            None => defaults.gpu_watts,
        },
        grams_per_kwh: match file.grams_per_kwh {
            Some(v)
                if v.is_finite()
                    && (0.0..=f64::from(engine::energy::MAX_GRAMS_PER_KWH)).contains(&v) =>
            {
                Some(v)
            }
            Some(v) => bail!(
                "energy.grams_per_kwh = {v} is not a figure from 0 to {}",
                engine::energy::MAX_GRAMS_PER_KWH
            ),
            None => defaults.grams_per_kwh,
        },
    })
}

/// The idle rules: `[idle]`, then `--dedicated` and `--cpu-percent`, over the defaults.
fn idle_rules(
    file: &IdleFile,
    dedicated: bool,
    cpu_percent: Option<u8>,
) -> anyhow::Result<IdleRules> {
    let mut rules = if dedicated || file.dedicated.unwrap_or(false) {
        IdleRules::dedicated()
    } else {
        let defaults = IdleRules::default();
        IdleRules {
            idle_after: match duration("idle.idle_after", &file.idle_after)? {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => defaults.idle_after,
            },
            max_other_load_percent: match percent(
                "idle.max_other_load_percent",
                file.max_other_load_percent,
            )? {
                Some(100) => None,
                Some(p) => Some(p),
                None => defaults.max_other_load_percent,
            },
            suspend_on_battery: file
                .suspend_on_battery
                .unwrap_or(defaults.suspend_on_battery),
            min_battery_percent: match percent(
                "idle.min_battery_percent",
                file.min_battery_percent,
            )? {
                Some(0) => None,
                Some(p) => Some(p),
                None => defaults.min_battery_percent,
            },
            ..defaults
        }
    };
    if let Some(hours) = &file.hours {
        rules.schedule =
            Some(Schedule::parse(hours).map_err(|e| anyhow::anyhow!("idle.hours: {e}"))?);
    }
    if let Some(grace) = duration("idle.grace", &file.grace)? {
        rules.grace = grace;
    }
    match cpu_percent.or(file.cpu_percent) {
        Some(p) if (1..=100).contains(&p) => rules.cpu_percent = p,
        Some(p) => bail!("cpu_percent = {p}: a share of a core's time is 1 to 100"),
        None => {}
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("provider.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn flags() -> ProviderFlags {
        ProviderFlags {
            coordinator: Some("http://127.0.0.1:7070".into()),
            ..ProviderFlags::default()
        }
    }

    #[test]
    fn the_example_file_parses_and_its_rules_are_the_defaults() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/provider.toml"
        ));
        let c = provider(Some(path), ProviderFlags::default()).unwrap();
        assert_eq!(c.idle, IdleRules::default());
        assert_eq!(c.energy, provider::energy::EnergyConfig::default());
        assert_eq!(c.coordinator, "http://127.0.0.1:7070");
        assert_eq!(c.price_per_fuel, 1);
    }

    #[test]
    fn file_sets_values_relative_to_itself_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"coordinator = "http://example.org:7070"
               data_dir = "state"
               slots = 3
               memory = "2GiB"
               region = "eu-west"
               price = 5
               [idle]
               idle_after = "10m"
               max_other_load_percent = 100
               min_battery_percent = 0
               hours = ["mon-fri 18:00-08:00", "sat,sun"]
               cpu_percent = 40
               grace = "5m""#,
        );
        let c = provider(Some(&path), ProviderFlags::default()).unwrap();
        assert_eq!(c.coordinator, "http://example.org:7070");
        assert_eq!(c.data_dir, dir.path().join("state"));
        assert_eq!((c.slots, c.memory_bytes, c.price_per_fuel), (3, 2 << 30, 5));
        assert_eq!(c.region, "eu-west");
        assert_eq!(c.idle.idle_after, Some(Duration::from_secs(600)));
        assert_eq!(c.idle.max_other_load_percent, None);
        assert_eq!(c.idle.min_battery_percent, None);
        assert!(c.idle.suspend_on_battery);
        assert_eq!(c.idle.schedule.as_ref().unwrap().entries().len(), 2);
        assert_eq!(
            (c.idle.cpu_percent, c.idle.grace),
            (40, Duration::from_secs(300))
        );

        let c = provider(
            Some(&path),
            ProviderFlags {
                slots: Some(1),
                region: Some("home".into()),
                cpu_percent: Some(75),
                dedicated: true,
                ..flags()
            },
        )
        .unwrap();
        assert_eq!((c.slots, c.region.as_str()), (1, "home"));
        assert_eq!(c.coordinator, "http://127.0.0.1:7070");
        // Dedicated: no rule suspends it; the CPU share and schedule still hold.
        assert_eq!(c.idle.idle_after, None);
        assert_eq!(c.idle.max_other_load_percent, None);
        assert!(!c.idle.suspend_on_battery);
        assert_eq!(c.idle.cpu_percent, 75);
        assert!(c.idle.schedule.is_some());
    }

    #[test]
    fn mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("slotz = 3", "slotz"),
            ("slots = 0", "slots = 0"),
            ("memory = \"lots\"", "memory"),
            ("[idle]\nidle_after = \"soon\"", "idle.idle_after"),
            (
                "[idle]\nmax_other_load_percent = 150",
                "idle.max_other_load_percent",
            ),
            ("[idle]\ncpu_percent = 0", "cpu_percent"),
            ("[idle]\nhours = [\"someday\"]", "idle.hours"),
            ("[idle]\nnap = true", "nap"),
            ("operator = \"me\"", "operator"),
            ("[energy]\nwatts_per_core = -1.0", "energy.watts_per_core"),
            ("[energy]\ngrams_per_kwh = nan", "energy.grams_per_kwh"),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), text);
            let err = format!("{:#}", provider(Some(&path), flags()).unwrap_err());
            assert!(
                err.contains(want),
                "{text:?}: {err:?} should mention {want:?}"
            );
        }
        let err = format!(
            "{:#}",
            provider(None, ProviderFlags::default()).unwrap_err()
        );
        assert!(err.contains("no coordinator"), "{err}");
    }
}
