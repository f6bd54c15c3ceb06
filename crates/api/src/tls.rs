//! TLS between clients and coordinators (issue 16): what a client trusts — certificate pins, a
//! CA file, or the system's roots — and the self-signed certificate a coordinator makes from its
//! own ed25519 key, so that a development network has HTTPS with nothing to configure.
//!
//! A pin is the SHA-256 of a certificate's public key (its DER `SubjectPublicKeyInfo`, as in
//! RFC 7469), written `sha256/<64 hex digits>`. A coordinator prints its own at start. A
//! self-signed certificate's key is the coordinator's key, so its pin follows from the
//! coordinator's id alone ([`Pin::of_ed25519`]): validators check each other that way with
//! nothing configured beyond the validator set. Only TLS 1.3 is spoken, so the key only ever
//! signs TLS 1.3's own domain-separated handshake transcript beside Gridmint's messages.

use crate::auth::Identity;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("not a certificate pin: {0:?} (a pin is sha256/ and 64 hex digits)")]
    Pin(String),
    #[error("{0}")]
    Config(String),
}

/// The SHA-256 of a certificate's DER `SubjectPublicKeyInfo`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pin(pub [u8; 32]);

/// DER of an ed25519 `SubjectPublicKeyInfo` up to the 32 key bytes (RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER of an ed25519 PKCS#8 v1 private key up to the 32 secret bytes (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl Pin {
    pub fn of_spki(spki_der: &[u8]) -> Pin {
        let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
        let mut pin = [0u8; 32];
        pin.copy_from_slice(digest.as_ref());
        Pin(pin)
    }

    /// The pin of a certificate whose key is the ed25519 public key `key` (an account id): a
    /// coordinator's self-signed certificate.
    pub fn of_ed25519(key: &[u8; 32]) -> Pin {
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(key);
        Pin::of_spki(&spki)
    }

    pub fn of_certificate(der: &CertificateDer<'_>) -> Result<Pin, TlsError> {
        let cert = webpki::EndEntityCert::try_from(der)
            .map_err(|e| TlsError::Config(format!("not an X.509 certificate: {e}")))?;
        Ok(Pin::of_spki(cert.subject_public_key_info().as_ref()))
    }
}

impl std::fmt::Display for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256/{}", hex::encode(self.0))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Pin {
    type Err = TlsError;
    fn from_str(s: &str) -> Result<Pin, TlsError> {
        let digits = s.trim().strip_prefix("sha256/").unwrap_or(s.trim());
        let mut pin = [0u8; 32];
        hex::decode_to_slice(digits, &mut pin).map_err(|_| TlsError::Pin(s.to_string()))?;
        Ok(Pin(pin))
    }
}

/// What a client trusts when it connects to a coordinator over HTTPS, and whether it may talk
/// plain HTTP to one that is not on this machine.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// Certificates (or their issuers) trusted as roots, names checked: `--ca`.
    pub ca: Vec<CertificateDer<'static>>,
    /// Certificates trusted by their key alone, whatever their issuer or names: `--pin`.
    pub pins: Vec<Pin>,
    /// Plain `http://` to an address that is not loopback (`--plain-http`): requests, heartbeat
    /// tokens included, then cross the network in clear.
    pub plain_http: bool,
}

impl Trust {
    /// `ca`: a PEM file of one or more certificates; `pins`: as [`Pin`] parses them (blank ones,
    /// as an empty `GRIDMINT_PIN` gives, are no pin).
    pub fn load(ca: Option<&Path>, pins: &[String], plain_http: bool) -> Result<Trust, TlsError> {
        let ca = match ca {
            None => Vec::new(),
            Some(path) => read_certificates(path)?,
        };
        let pins = pins
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.parse())
            .collect::<Result<Vec<Pin>, _>>()?;
        Ok(Trust {
            ca,
            pins,
            plain_http,
        })
    }
}

/// The certificates in the PEM file at `path` (at least one).
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    let err = |msg: String| TlsError::File {
        path: path.display().to_string(),
        msg,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(err("holds no certificate (PEM `BEGIN CERTIFICATE`)".into()));
    }
    Ok(certs)
}

/// The private key in the PEM file at `path`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    use rustls::pki_types::pem::PemObject;
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::File {
        path: path.display().to_string(),
        msg: format!("not a PEM private key: {e}"),
    })
}

static TRUST: RwLock<Option<Trust>> = RwLock::new(None);

/// Sets what this process's clients trust (the CLI does, from `--ca`, `--pin` and
/// `--plain-http`). Without it a client trusts the system's roots and talks plain HTTP only to
/// loopback addresses. Refused, and nothing changed, if the trust makes no client configuration
/// (a `--ca` file whose certificates are not usable as roots).
pub fn set_trust(trust: Trust) -> Result<(), TlsError> {
    install_provider();
    client_config(&trust, None)?;
    *TRUST.write().unwrap_or_else(|p| p.into_inner()) = Some(trust);
    Ok(())
}

/// What this process's clients trust ([`set_trust`]).
pub fn trust() -> Trust {
    TRUST
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

/// Whether plain HTTP to `url` is refused: it is `http://` to a host that is not loopback, and
/// `plain_http` (`--plain-http`) is not set.
pub fn refuses_plain(url: &str, plain_http: bool) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    if plain_http {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => host,
        None => authority,
    };
    let host = match host.strip_prefix('[') {
        // [v6]:port
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// What a failed handshake says, with rustls's wrapping of our own reasons taken off.
pub fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            format!("invalid peer certificate: {}", other.0)
        }
        other => other.to_string(),
    }
}

/// Keys a client trusts besides its [`Trust`]: a validator trusts every validator of the set as
/// it is now, by the pin of its self-signed certificate.
pub type AlsoTrusted = Arc<dyn Fn(&Pin) -> bool + Send + Sync>;

/// rustls's ring provider: the one crypto provider in this workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring this process's default crypto provider, for `reqwest` clients built without
/// [`client_builder`] (reqwest is built without a provider of its own, and panics without one).
/// Idempotent; [`set_trust`] and [`client_builder`] call it.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means another provider was installed first: that one serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client configuration (TLS 1.3) that trusts `trust` and whatever `also` accepts.
pub fn client_config(
    trust: &Trust,
    also: Option<AlsoTrusted>,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let fallback = if !trust.ca.is_empty() {
        let mut roots = rustls::RootCertStore::empty();
        for cert in &trust.ca {
            roots
                .add(cert.clone())
                .map_err(|e| TlsError::Config(format!("a --ca certificate: {e}")))?;
        }
        Fallback::Ca(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| TlsError::Config(format!("the --ca roots: {e}")))?,
        )
    } else if trust.pins.is_empty() {
        // Nothing pinned: a certificate from a public CA, checked against the system's roots.
        Fallback::System
    } else {
        // Pinned and no CA named: only the pinned keys.
        Fallback::Nothing
    };
    let verifier = Verifier {
        pins: trust.pins.clone(),
        also,
        fallback,
        provider: provider.clone(),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// A `reqwest` client builder that speaks TLS as [`client_config`] says, with this process's
/// [`trust`].
pub fn client_builder(also: Option<AlsoTrusted>) -> Result<reqwest::ClientBuilder, TlsError> {
    install_provider();
    let config = client_config(&trust(), also)?;
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .https_only(false))
}

/// Accepts a server certificate by its pin, else as `fallback` says; the handshake's signatures
/// are checked by the provider either way (so the server holds the pinned key).
struct Verifier {
    pins: Vec<Pin>,
    also: Option<AlsoTrusted>,
    fallback: Fallback,
    provider: Arc<CryptoProvider>,
}

/// What vouches for a certificate whose key is not pinned.
#[derive(Debug)]
enum Fallback {
    /// The `--ca` roots, names checked.
    Ca(Arc<rustls::client::WebPkiServerVerifier>),
    /// The system's roots, names checked ([`system_roots`]).
    System,
    /// Nothing: only pinned keys.
    Nothing,
}

/// The system's roots, read once per process and only when a certificate is to be checked
/// against them (most connections are pinned or plain HTTP on loopback).
fn system_roots() -> Result<Arc<rustls_platform_verifier::Verifier>, rustls::Error> {
    static ROOTS: std::sync::OnceLock<Result<Arc<rustls_platform_verifier::Verifier>, String>> =
        std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            rustls_platform_verifier::Verifier::new(provider())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| {
            rustls::Error::General(format!(
                "no certificate roots on this system ({e}): pin the coordinator's certificate \
                 (--pin) or name its CA (--ca)"
            ))
        })
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("pins", &self.pins)
            .field("also", &self.also.is_some())
            .field("fallback", &self.fallback)
            .finish()
    }
}

/// The certificate's key is not pinned and nothing else vouches for it. With the reason the
/// roots gave, if any were asked.
struct NotPinned(Pin, Option<rustls::CertificateError>);

impl std::fmt::Debug for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for NotPinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(reason) = &self.1 {
            write!(f, "{reason:?}: ")?;
        }
        write!(
            f,
            "the server's certificate (pin {0}) is neither pinned nor issued by a CA this \
             client trusts; if it is your coordinator's (its data dir's tls/pin), pass --pin {0}",
            self.0
        )
    }
}

impl std::error::Error for NotPinned {}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let pin = Pin::of_certificate(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if self.pins.contains(&pin) || self.also.as_ref().is_some_and(|also| also(&pin)) {
            return Ok(ServerCertVerified::assertion());
        }
        let not_pinned = |reason| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(NotPinned(pin, reason)),
            )))
        };
        let checked = match &self.fallback {
            Fallback::Ca(ca) => {
                ca.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            Fallback::System => system_roots()?.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            ),
            Fallback::Nothing => return Err(not_pinned(None)),
        };
        checked.map_err(|e| match e {
            // No root vouches for it at all: say what would.
            rustls::Error::InvalidCertificate(
                reason @ (rustls::CertificateError::UnknownIssuer
                | rustls::CertificateError::BadSignature),
            ) => not_pinned(Some(reason)),
            other => other,
        })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A certificate with its private key, as a server presents it.
pub struct ServerIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The pin of `chain[0]`: what a client passes as `--pin`.
    pub pin: Pin,
    /// The chain as PEM: what a client may keep and pass as `--ca`.
    pub pem: String,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("pin", &self.pin)
            .finish()
    }
}

impl ServerIdentity {
    /// A certificate for `names` (DNS names or IP addresses) signed by, and for, `identity`'s
    /// ed25519 key. Its pin is [`Pin::of_ed25519`] of the identity's id. The same key gives the
    /// same pin after every restart; the certificate names no validity window that a clock
    /// could fall out of (rcgen's default: 1975 to 4096).
    pub fn self_signed(
        identity: &Identity,
        names: Vec<String>,
    ) -> Result<ServerIdentity, TlsError> {
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&identity.secret_bytes());
        let pkcs8 = PrivatePkcs8KeyDer::from(pkcs8);
        let key_pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
                .map_err(|e| TlsError::Config(format!("the coordinator's key for TLS: {e}")))?;
        let mut params = rcgen::CertificateParams::new(names)
            .map_err(|e| TlsError::Config(format!("the certificate's names: {e}")))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("gridmint coordinator {}", identity.id()),
        );
        let cert = params
            .self_signed(&key_pair)
            .map_err(|e| TlsError::Config(format!("signing the certificate: {e}")))?;
        let der = cert.der().clone();
        let pin = Pin::of_certificate(&der)?;
        Ok(ServerIdentity {
            chain: vec![der],
            key: PrivateKeyDer::Pkcs8(pkcs8),
            pin,
            pem: cert.pem(),
        })
    }

    /// The certificate chain and key in two PEM files (`--tls-cert`, `--tls-key`).
    pub fn from_files(cert: &Path, key: &Path) -> Result<ServerIdentity, TlsError> {
        let chain = read_certificates(cert)?;
        let key = read_private_key(key)?;
        let first = chain
            .first()
            .ok_or_else(|| TlsError::Config("no certificate".into()))?;
        let pin = Pin::of_certificate(first)?;
        let pem = std::fs::read_to_string(cert).map_err(|e| TlsError::File {
            path: cert.display().to_string(),
            msg: e.to_string(),
        })?;
        Ok(ServerIdentity {
            chain,
            key,
            pin,
            pem,
        })
    }

    /// A server configuration: TLS 1.3 only, HTTP/2 or HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| TlsError::Config(format!("the certificate and its key: {e}")))?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a TLS handshake in memory between a client trusting `trust` (and `also`) and a
    /// server presenting `server`, for `name`: the client's error, if any.
    fn handshake(
        trust: &Trust,
        also: Option<AlsoTrusted>,
        server: &ServerIdentity,
        name: &str,
    ) -> Result<(), String> {
        let client_config = Arc::new(client_config(trust, also).map_err(|e| e.to_string())?);
        let server_config = Arc::new(server.server_config().map_err(|e| e.to_string())?);
        let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let mut client =
            rustls::ClientConnection::new(client_config, name).map_err(|e| describe(&e))?;
        let mut server = rustls::ServerConnection::new(server_config).map_err(|e| e.to_string())?;
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).map_err(|e| e.to_string())?;
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                server.read_tls(&mut read).map_err(|e| e.to_string())?;
            }
            server
                .process_new_packets()
                .map_err(|e| format!("server: {e}"))?;
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).map_err(|e| e.to_string())?;
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                client.read_tls(&mut read).map_err(|e| e.to_string())?;
            }
            client.process_new_packets().map_err(|e| describe(&e))?;
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        Err("the handshake did not finish".into())
    }

    fn coordinator() -> (Identity, ServerIdentity) {
        let identity = Identity::from_secret([7; 32]);
        let server =
            ServerIdentity::self_signed(&identity, vec!["localhost".into(), "127.0.0.1".into()])
                .unwrap();
        (identity, server)
    }

    #[test]
    fn a_self_signed_certificate_is_pinned_by_the_coordinators_key() {
        let (identity, server) = coordinator();
        assert_eq!(server.pin, Pin::of_ed25519(&identity.id().0));
        // The same key makes the same pin after a restart.
        let again = ServerIdentity::self_signed(&identity, vec!["localhost".into()]).unwrap();
        assert_eq!(again.pin, server.pin);
        let other = ServerIdentity::self_signed(&Identity::from_secret([8; 32]), vec![]).unwrap();
        assert_ne!(other.pin, server.pin);
        assert!(server.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn pins_read_what_they_print_and_refuse_anything_else() {
        let (_, server) = coordinator();
        let printed = server.pin.to_string();
        assert!(printed.starts_with("sha256/") && printed.len() == 7 + 64);
        assert_eq!(printed.parse::<Pin>().unwrap(), server.pin);
        // The bare hex is accepted too.
        assert_eq!(printed[7..].parse::<Pin>().unwrap(), server.pin);
        for bad in [
            "",
            "sha256/",
            "sha256/abcd",
            "sha1/00",
            &printed[..70],
            "zz",
        ] {
            assert!(bad.parse::<Pin>().is_err(), "{bad:?}");
        }
        assert!(Trust::load(None, &["nonsense".into()], false).is_err());
    }

    #[test]
    fn a_client_trusts_the_pinned_key_and_nothing_else() {
        let (_, server) = coordinator();
        let pinned = Trust {
            pins: vec![server.pin],
            ..Trust::default()
        };
        handshake(&pinned, None, &server, "localhost").unwrap();
        // A pin is a key, not a name: any name goes.
        handshake(&pinned, None, &server, "coordinator.example").unwrap();
        // Another coordinator's certificate, even a well-formed one, is refused by its pin.
        let (_, other) = (
            (),
            ServerIdentity::self_signed(&Identity::from_secret([9; 32]), vec!["localhost".into()])
                .unwrap(),
        );
        let err = handshake(&pinned, None, &other, "localhost").unwrap_err();
        assert!(err.contains(&other.pin.to_string()), "{err}");
        assert!(err.contains(&format!("pass --pin {}", other.pin)), "{err}");
    }

    #[test]
    fn a_validator_trusts_the_keys_of_the_set() {
        let (identity, server) = coordinator();
        let set = [identity.id().0];
        let also: AlsoTrusted =
            Arc::new(move |pin: &Pin| set.iter().any(|k| Pin::of_ed25519(k) == *pin));
        let nothing_pinned = Trust {
            pins: vec![Pin([0; 32])],
            ..Trust::default()
        };
        handshake(&nothing_pinned, Some(also.clone()), &server, "localhost").unwrap();
        let outsider =
            ServerIdentity::self_signed(&Identity::from_secret([10; 32]), vec!["localhost".into()])
                .unwrap();
        assert!(handshake(&nothing_pinned, Some(also), &outsider, "localhost").is_err());
    }

    #[test]
    fn a_ca_file_is_trusted_for_the_names_it_certifies() {
        let (_, server) = coordinator();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("coordinator.pem");
        std::fs::write(&ca, &server.pem).unwrap();
        let trust = Trust::load(Some(&ca), &[], false).unwrap();
        handshake(&trust, None, &server, "localhost").unwrap();
        handshake(&trust, None, &server, "127.0.0.1").unwrap();
        let err = handshake(&trust, None, &server, "elsewhere.example").unwrap_err();
        assert!(err.contains("not valid for name"), "{err}");
        // A file with no certificate in it is refused when it is read, not at first use.
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "nothing here\n").unwrap();
        let err = Trust::load(Some(&empty), &[], false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("empty.pem") && err.contains("no certificate"),
            "{err}"
        );
    }

    #[test]
    fn plain_http_is_for_this_machine_unless_asked_for() {
        for (url, refused) in [
            ("http://127.0.0.1:7070", false),
            ("http://127.0.0.2:7070/v1/status", false),
            ("http://localhost:7070", false),
            ("http://[::1]:7070", false),
            ("http://LOCALHOST", false),
            ("https://10.0.0.5:7070", false),
            ("http://10.0.0.5:7070", true),
            ("http://[2001:db8::1]:7070", true),
            ("http://coordinator.example", true),
            ("http://user@10.0.0.5:7070", true),
            ("http://127.0.0.1.example:7070", true),
        ] {
            assert_eq!(refuses_plain(url, false), refused, "{url}");
            assert!(!refuses_plain(url, true), "{url}");
        }
    }
}
