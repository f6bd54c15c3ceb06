//! HTTPS for the coordinator (issue 16): which certificate it serves, when it may serve plain
//! HTTP, and how validators trust each other's certificates with nothing configured.
//!
//! Plain HTTP is served on a loopback address only, unless `--plain-http` says otherwise;
//! anywhere else the coordinator serves HTTPS, with the certificate it is given
//! (`--tls-cert`, `--tls-key`) or one it signs itself with its own key (`api::tls`), whose pin
//! it prints and writes beside its key (`tls/certificate.pem`, `tls/pin`).

use crate::consensus::LiveSet;
use api::tls::{AlsoTrusted, Pin, ServerIdentity};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a coordinator serves HTTP.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// A certificate chain and its private key (PEM files): HTTPS with them.
    pub cert: Option<(PathBuf, PathBuf)>,
    /// HTTPS on a loopback address too (with a self-signed certificate unless `cert`).
    pub force: bool,
    /// Plain HTTP on an address that is not loopback: requests, providers' heartbeat tokens
    /// among them, cross the network in clear.
    pub plain_http: bool,
}

/// What the coordinator serves: the certificate for HTTPS, or `None` for plain HTTP.
pub fn resolve(
    config: &TlsConfig,
    listen: SocketAddr,
    key: &api::Identity,
) -> anyhow::Result<Option<ServerIdentity>> {
    if config.plain_http && (config.force || config.cert.is_some()) {
        anyhow::bail!("--plain-http contradicts --tls and --tls-cert: choose one");
    }
    if let Some((cert, private)) = &config.cert {
        return Ok(Some(ServerIdentity::from_files(cert, private)?));
    }
    let loopback = listen.ip().is_loopback();
    if config.plain_http || (loopback && !config.force) {
        if !loopback {
            tracing::warn!(
                %listen,
                "serving plain HTTP on an address that is not loopback (--plain-http): requests \
                 and providers' heartbeat tokens cross the network in clear"
            );
        }
        return Ok(None);
    }
    let mut names = vec!["localhost".to_string()];
    let ip = listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    for loopback in ["127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == loopback) {
            names.push(loopback.to_string());
        }
    }
    Ok(Some(ServerIdentity::self_signed(key, names)?))
}

/// Writes the served certificate and its pin beside the validator key, for clients on this
/// machine and for operators to hand out (`--ca tls/certificate.pem`, `--pin $(cat tls/pin)`).
pub fn publish(dir: &std::path::Path, served: &ServerIdentity) -> anyhow::Result<()> {
    use anyhow::Context;
    let dir = dir.join("tls");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let cert = dir.join("certificate.pem");
    std::fs::write(&cert, &served.pem).with_context(|| format!("writing {}", cert.display()))?;
    let pin = dir.join("pin");
    std::fs::write(&pin, format!("{}\n", served.pin))
        .with_context(|| format!("writing {}", pin.display()))?;
    Ok(())
}

/// A validator trusts the self-signed certificate of every member of the set as it is now: its
/// pin follows from the member's account ([`Pin::of_ed25519`]).
pub fn members_trusted(set: LiveSet) -> AlsoTrusted {
    Arc::new(move |pin: &Pin| {
        set.with(|set| {
            set.validators
                .iter()
                .any(|v| Pin::of_ed25519(&v.account.0) == *pin)
        })
    })
}

/// The same for a fixed set (a joining validator asking the genesis validators).
pub fn set_trusted(set: &engine::ValidatorSet) -> AlsoTrusted {
    let pins: Vec<Pin> = set
        .validators
        .iter()
        .map(|v| Pin::of_ed25519(&v.account.0))
        .collect();
    Arc::new(move |pin: &Pin| pins.contains(pin))
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 0x16;

/// Whether `stream` starts with a TLS handshake. If it starts with anything else (a plain HTTP
/// request to an HTTPS coordinator), the client is told in plain HTTP what to use instead —
/// `400 https_required`, which a client takes as a refusal rather than a network fault to
/// retry — and `false` is returned. `None`: nothing came within `wait`.
pub async fn starts_tls(
    stream: &mut tokio::net::TcpStream,
    addr: SocketAddr,
    wait: Duration,
) -> Option<bool> {
    let mut first = [0u8; 1];
    match tokio::time::timeout(wait, stream.peek(&mut first)).await {
        Ok(Ok(1)) if first[0] == TLS_HANDSHAKE => Some(true),
        Ok(Ok(1)) => {
            let answer = async {
                // Read the request head before answering, so that the answer is not lost to a
                // reset of a connection closed with unread bytes.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while head.len() < 16 * 1024 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
                    }
                }
                let body = serde_json::json!({
                    "error": "https_required",
                    "detail": format!("this coordinator serves HTTPS: use https://{addr}"),
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                if stream.write_all(response.as_bytes()).await.is_ok() {
                    let _ = stream.shutdown().await;
                    // Drain what else the client sent until it closes.
                    while let Ok(n) = stream.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(wait, answer).await;
            Some(false)
        }
        _ => None,
    }
}
