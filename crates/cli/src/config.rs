//! `gridmint coordinator --config FILE`: a coordinator's settings as TOML. Every setting can also be
//! given as a flag, and a flag wins over the file; anything in neither gets the default that works
//! on a laptop. `examples/coordinator.toml` lists every key.

use anyhow::{Context, bail};
use jobspec::Size;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file. Paths in it are relative to the file's own directory.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoordinatorFile {
    /// Address to listen on ("127.0.0.1:7070").
    pub listen: Option<SocketAddr>,
    /// Directory for the command log, blobs and the validator key ("gridmint-data/coordinator").
    pub data_dir: Option<PathBuf>,
    /// How often providers heartbeat ("2s").
    pub heartbeat_interval: Option<String>,
    /// Silence after which a provider is declared lost and its tasks requeued ("10s").
    pub heartbeat_timeout: Option<String>,
    /// Largest blob (module, input, output) accepted ("64MiB").
    pub max_blob_size: Option<Size>,
    /// Snapshot the state every this many log entries (10000).
    pub snapshot_every: Option<u64>,
    /// How often new log entries are sealed into a signed block ("1s").
    pub block_interval: Option<String>,
    /// Start a development network with a faucet (false).
    pub dev: Option<bool>,
    /// Genesis file of a new network.
    pub genesis: Option<PathBuf>,
    /// Reads per second one address may make (200; 0: no limit).
    pub reads_per_second: Option<u32>,
    /// Writes (actions, batches, uploads) per second one address may make (100; 0: no limit).
    pub writes_per_second: Option<u32>,
    /// Logged actions per second one account may sign (100; 0: no limit).
    pub actions_per_second: Option<u32>,
    /// Bytes of uploaded blobs that no job or result names yet one account may hold ("256MiB").
    pub blob_quota: Option<Size>,
    /// The same for one address, whatever keys it signs with ("1GiB").
    pub blob_quota_per_address: Option<Size>,
    /// How long an upload may stay unnamed before it is deleted ("1h").
    pub blob_expiry: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM); needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS on a loopback address too (false; elsewhere HTTPS is the default).
    pub tls: Option<bool>,
    /// Serve plain HTTP on an address that is not loopback (false).
    pub plain_http: Option<bool>,
}

/// Settings as given on the command line (`None`: not given).
#[derive(Debug, Default)]
pub struct CoordinatorFlags {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub heartbeat_interval: Option<Duration>,
    pub heartbeat_timeout: Option<Duration>,
    pub max_blob_size: Option<u64>,
    pub snapshot_every: Option<u64>,
    pub block_interval: Option<Duration>,
    pub dev: bool,
    pub genesis: Option<PathBuf>,
    pub reads_per_second: Option<u32>,
    pub writes_per_second: Option<u32>,
    pub actions_per_second: Option<u32>,
    pub blob_quota: Option<u64>,
    pub blob_quota_per_address: Option<u64>,
    pub blob_expiry: Option<Duration>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls: bool,
    pub plain_http: bool,
}

/// The settings in force.
#[derive(Debug)]
pub struct CoordinatorSettings {
    pub listen: SocketAddr,
    pub config: coordinator::CoordinatorConfig,
}

fn duration(key: &str, value: &Option<String>) -> anyhow::Result<Option<Duration>> {
    value
        .as_deref()
        .map(|s| {
            humantime::parse_duration(s)
                .with_context(|| format!("{key} = {s:?} is not a duration like \"10s\""))
        })
        .transpose()
}

/// Reads `path` (if any) and merges: flag, then file, then default.
pub fn coordinator(
    path: Option<&Path>,
    flags: CoordinatorFlags,
) -> anyhow::Result<CoordinatorSettings> {
    let (file, base) = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading config {}", path.display()))?;
            let file = parse(&text).with_context(|| format!("config {}", path.display()))?;
            (
                file,
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            )
        }
        None => (CoordinatorFile::default(), PathBuf::new()),
    };
    let data_dir = flags
        .data_dir
        .or_else(|| file.data_dir.as_ref().map(|d| base.join(d)))
        .unwrap_or_else(|| PathBuf::from("gridmint-data/coordinator"));
    let mut config = coordinator::CoordinatorConfig::new(data_dir);
    let pick = |flag: Option<Duration>, key: &str, value: &Option<String>, default: Duration| {
        anyhow::Ok(match flag {
            Some(d) => d,
            None => duration(key, value)?.unwrap_or(default),
        })
    };
    config.heartbeat_interval = pick(
        flags.heartbeat_interval,
        "heartbeat_interval",
        &file.heartbeat_interval,
        config.heartbeat_interval,
    )?;
    config.heartbeat_timeout = pick(
        flags.heartbeat_timeout,
        "heartbeat_timeout",
        &file.heartbeat_timeout,
        config.heartbeat_timeout,
    )?;
    config.block_interval = pick(
        flags.block_interval,
        "block_interval",
        &file.block_interval,
        config.block_interval,
    )?;
    config.max_blob_bytes = match (flags.max_blob_size, &file.max_blob_size) {
        (Some(n), _) => n,
        (None, Some(size)) => size.bytes().context("max_blob_size")?,
        (None, None) => config.max_blob_bytes,
    };
    config.snapshot_every = flags
        .snapshot_every
        .or(file.snapshot_every)
        .unwrap_or(config.snapshot_every);
    let rates = config.rates;
    config.rates = coordinator::limits::RateConfig {
        reads_per_s: flags
            .reads_per_second
            .or(file.reads_per_second)
            .unwrap_or(rates.reads_per_s),
        writes_per_s: flags
            .writes_per_second
            .or(file.writes_per_second)
            .unwrap_or(rates.writes_per_s),
        actions_per_s: flags
            .actions_per_second
            .or(file.actions_per_second)
            .unwrap_or(rates.actions_per_s),
    };
    let size = |flag: Option<u64>, key: &str, value: &Option<Size>, default: u64| {
        anyhow::Ok(match (flag, value) {
            (Some(n), _) => n,
            (None, Some(size)) => size.bytes().context(key.to_string())?,
            (None, None) => default,
        })
    };
    let quota = config.blob_quota;
    config.blob_quota = coordinator::blob_quota::BlobQuotaConfig {
        per_account: size(
            flags.blob_quota,
            "blob_quota",
            &file.blob_quota,
            quota.per_account,
        )?,
        per_address: size(
            flags.blob_quota_per_address,
            "blob_quota_per_address",
            &file.blob_quota_per_address,
            quota.per_address,
        )?,
        expiry: pick(
            flags.blob_expiry,
            "blob_expiry",
            &file.blob_expiry,
            quota.expiry,
        )?,
    };
    if config.blob_quota.per_account < config.max_blob_bytes {
        bail!(
            "blob_quota ({} bytes) is below the largest blob accepted ({} bytes): that blob could never be uploaded",
            config.blob_quota.per_account,
            config.max_blob_bytes
        );
    }
    if config.heartbeat_timeout <= config.heartbeat_interval {
        bail!(
            "heartbeat timeout ({:?}) must be longer than the heartbeat interval ({:?})",
            config.heartbeat_timeout,
            config.heartbeat_interval
        );
    }
    if config.snapshot_every == 0 {
        bail!("snapshot_every must be at least 1");
    }
    let genesis_file = flags
        .genesis
        .clone()
        .or_else(|| file.genesis.as_ref().map(|g| base.join(g)));
    let dev = flags.dev || (flags.genesis.is_none() && file.dev.unwrap_or(false));
    config.genesis = match (dev, genesis_file) {
        (true, Some(_)) if !flags.dev => bail!("dev = true and genesis are both set; pick one"),
        (true, _) => coordinator::GenesisChoice::Dev,
        (false, Some(path)) => {
            let (genesis, validators) = crate::genesis::load_network(&path)?;
            config.validators = Some(validators);
            coordinator::GenesisChoice::Given(Box::new(genesis))
        }
        (false, None) => coordinator::GenesisChoice::Stored,
    };
    let tls_cert = flags
        .tls_cert
        .or_else(|| file.tls_cert.as_ref().map(|p| base.join(p)));
    let tls_key = flags
        .tls_key
        .or_else(|| file.tls_key.as_ref().map(|p| base.join(p)));
    config.tls = coordinator::https::TlsConfig {
        cert: match (tls_cert, tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => bail!("tls_cert and tls_key go together: give both or neither"),
        },
        force: flags.tls || file.tls.unwrap_or(false),
        plain_http: flags.plain_http || file.plain_http.unwrap_or(false),
    };
    let listen = flags
        .listen
        .or(file.listen)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
    Ok(CoordinatorSettings { listen, config })
}

fn parse(text: &str) -> anyhow::Result<CoordinatorFile> {
    toml::from_str(text).context("parsing TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("coordinator.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_without_file_or_flags() {
        let s = coordinator(None, CoordinatorFlags::default()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:7070".parse().unwrap());
        assert_eq!(
            s.config.data_dir,
            PathBuf::from("gridmint-data/coordinator")
        );
        assert_eq!(s.config.heartbeat_timeout, Duration::from_secs(10));
    }

    #[test]
    fn file_sets_values_and_flags_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            r#"listen = "0.0.0.0:9000"
               data_dir = "state"
               heartbeat_interval = "500ms"
               heartbeat_timeout = "3s"
               max_blob_size = "1MiB"
               snapshot_every = 50
               block_interval = "250ms"
               reads_per_second = 7
               actions_per_second = 0"#,
        );
        let s = coordinator(Some(&path), CoordinatorFlags::default()).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.config.data_dir, dir.path().join("state"));
        assert_eq!(s.config.heartbeat_interval, Duration::from_millis(500));
        assert_eq!(s.config.heartbeat_timeout, Duration::from_secs(3));
        assert_eq!(s.config.max_blob_bytes, 1 << 20);
        assert_eq!(s.config.snapshot_every, 50);
        assert_eq!(s.config.block_interval, Duration::from_millis(250));
        assert_eq!(
            s.config.rates,
            coordinator::limits::RateConfig {
                reads_per_s: 7,
                writes_per_s: 100,
                actions_per_s: 0,
            }
        );

        let flags = CoordinatorFlags {
            reads_per_second: Some(9),
            listen: Some("127.0.0.1:1".parse().unwrap()),
            heartbeat_timeout: Some(Duration::from_secs(60)),
            max_blob_size: Some(7),
            ..CoordinatorFlags::default()
        };
        let s = coordinator(Some(&path), flags).unwrap();
        assert_eq!(s.listen, "127.0.0.1:1".parse().unwrap());
        assert_eq!(s.config.heartbeat_timeout, Duration::from_secs(60));
        assert_eq!(s.config.max_blob_bytes, 7);
        assert_eq!(s.config.rates.reads_per_s, 9);
        // Not overridden: still from the file.
        assert_eq!(s.config.heartbeat_interval, Duration::from_millis(500));
    }

    #[test]
    fn tls_settings_come_from_the_file_relative_to_it_and_flags_add_to_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n",
        );
        let s = coordinator(Some(&path), CoordinatorFlags::default()).unwrap();
        assert_eq!(
            s.config.tls,
            coordinator::https::TlsConfig {
                cert: Some((
                    dir.path().join("tls/cert.pem"),
                    dir.path().join("tls/key.pem")
                )),
                force: false,
                plain_http: false,
            }
        );
        let path = write(dir.path(), "plain_http = true\n");
        let s = coordinator(Some(&path), CoordinatorFlags::default()).unwrap();
        assert!(s.config.tls.plain_http && s.config.tls.cert.is_none());
        let flags = CoordinatorFlags {
            tls: true,
            ..CoordinatorFlags::default()
        };
        assert!(coordinator(None, flags).unwrap().config.tls.force);
    }

    #[test]
    fn mistakes_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("heartbeat_timeout = \"soon\"", "heartbeat_timeout"),
            ("max_blob_size = \"3 parsecs\"", "unknown size unit"),
            ("listen = \"nowhere\"", "listen"),
            ("snapshot_evry = 5", "snapshot_evry"),
            ("heartbeat_interval = \"20s\"", "must be longer"),
            ("snapshot_every = 0", "at least 1"),
            ("tls_cert = \"c.pem\"", "tls_key go together"),
        ];
        for (text, want) in cases {
            let path = write(dir.path(), text);
            let err = format!(
                "{:#}",
                coordinator(Some(&path), CoordinatorFlags::default()).unwrap_err()
            );
            assert!(
                err.contains(want),
                "{text:?}: {err:?} should mention {want:?}"
            );
        }
    }

    #[test]
    fn the_example_file_parses_and_matches_the_defaults() {
        let path = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/coordinator.toml"
        ));
        let s = coordinator(Some(path), CoordinatorFlags::default()).unwrap();
        let d = coordinator(None, CoordinatorFlags::default()).unwrap();
        assert_eq!(s.listen, d.listen);
        assert_eq!(s.config.heartbeat_interval, d.config.heartbeat_interval);
        assert_eq!(s.config.heartbeat_timeout, d.config.heartbeat_timeout);
        assert_eq!(s.config.max_blob_bytes, d.config.max_blob_bytes);
        assert_eq!(s.config.snapshot_every, d.config.snapshot_every);
        assert_eq!(s.config.block_interval, d.config.block_interval);
    }
}
