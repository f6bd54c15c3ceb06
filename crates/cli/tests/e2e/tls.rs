//! HTTPS (issue 16): a coordinator serving TLS with the certificate it signs with its own key
//! runs jobs for providers and requesters that pin it; a client that trusts nothing of it, or
//! pins another key, is refused with the pin it would need; plain HTTP to it is answered
//! `400 https_required`; a coordinator beyond loopback serves HTTPS unless told `--plain-http`;
//! clients refuse plain HTTP to another machine; a UDP ping carries a MAC, not the token, and
//! a replayed one is ignored.

use crate::support::{GRIDMINT, World, error_body, pi_output, pi_spec_verified};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn over_https_pinned_clients_run_a_job_and_everyone_else_is_told_what_to_trust() {
    let w = World::new();
    let c = w.coordinator(&["--tls"]);
    assert!(c.url.starts_with("https://127.0.0.1:"), "{}", c.url);
    // The pin is the coordinator's key's (its certificate is signed by that key), kept beside it.
    let pin = std::fs::read_to_string(c.data_dir.join("tls/pin")).unwrap();
    let pin = pin.trim();
    let key = api::Identity::load_or_create(&c.data_dir.join("validator.key")).unwrap();
    assert_eq!(pin, api::tls::Pin::of_ed25519(&key.id().0).to_string());

    // Providers and the requester are given the pin (GRIDMINT_PIN, as `--pin`): a verified job
    // runs to the right output.
    let _providers: Vec<_> = (0..3).map(|_| w.provider(&c, 1)).collect();
    let spec = w.write("pi.toml", pi_spec_verified(200, 3));
    let job = w.submit(&c.url, &spec);
    let view = w.http(&c.url).wait_job(job);
    assert_eq!(view.status, engine::JobStatus::Completed, "{view:?}");
    assert_eq!(
        String::from_utf8(w.results(&c.url, job)).unwrap(),
        pi_output(200, 3)
    );

    // Without the pin the system's roots do not vouch for it: refused at once (not retried for
    // 15 s as a network fault), with the pin to pass if this is the right coordinator.
    let status = ["job", "status", &job.to_string(), "--coordinator", &c.url];
    let started = std::time::Instant::now();
    let ran = w.cli_env(&status, &[("GRIDMINT_PIN", "")]).fails();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(ran.stderr.contains("TLS"), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("pass --pin {pin}")),
        "{}",
        ran.stderr
    );
    // Another key's pin is refused the same way.
    let other = api::tls::Pin([7; 32]).to_string();
    let ran = w.cli_env(&status, &[("GRIDMINT_PIN", &other)]).fails();
    assert!(ran.stderr.contains("neither pinned"), "{}", ran.stderr);
    // Its certificate file as a CA works for the names it certifies (127.0.0.1, localhost).
    let ca = c.data_dir.join("tls/certificate.pem");
    let ran = w
        .cli_env(
            &status,
            &[("GRIDMINT_PIN", ""), ("GRIDMINT_CA", ca.to_str().unwrap())],
        )
        .ok();
    assert!(ran.stdout.contains("completed"), "{}", ran.stdout);

    // Plain HTTP to the HTTPS port is told, in plain HTTP, what to use.
    let plain = c.url.replacen("https://", "http://", 1);
    let answer = w.block_on(async {
        let resp = reqwest::get(format!("{plain}/v1/status")).await.unwrap();
        (resp.status().as_u16(), resp.bytes().await.unwrap())
    });
    assert_eq!(answer.0, 400);
    let body = error_body(&answer.1);
    assert_eq!(body.error, "https_required");
    assert!(body.detail.contains(&c.url), "{}", body.detail);
    let ran = w
        .cli(&["job", "status", &job.to_string(), "--coordinator", &plain])
        .fails();
    assert!(ran.stderr.contains("https_required"), "{}", ran.stderr);
}

/// The first line `gridmint coordinator ARGS` prints, and the process (to be killed).
fn first_line(w: &World, args: &[&str]) -> (String, std::process::Child) {
    let mut child = Command::new(GRIDMINT)
        .env("GRIDMINT_HOME", w.home())
        .env_remove("GRIDMINT_PLAIN_HTTP")
        .args(["coordinator", "--dev", "--data-dir"])
        .arg(w.dir("coordinator"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (line, child)
}

#[test]
fn beyond_loopback_a_coordinator_serves_https_unless_told_plain_http_and_clients_agree() {
    let w = World::new();
    let (line, mut https) = first_line(&w, &["--listen", "0.0.0.0:0"]);
    let _ = https.kill();
    let _ = https.wait();
    assert!(
        line.starts_with("listening on https://0.0.0.0:") && line.contains("certificate pin"),
        "{line}"
    );
    let (line, mut plain) = first_line(&w, &["--listen", "0.0.0.0:0", "--plain-http"]);
    let _ = plain.kill();
    let _ = plain.wait();
    assert!(line.starts_with("listening on http://0.0.0.0:"), "{line}");
    // Both at once is a contradiction, refused before anything starts.
    let ran = w
        .cli(&["coordinator", "--dev", "--tls", "--plain-http"])
        .fails();
    assert!(ran.stderr.contains("--plain-http"), "{}", ran.stderr);

    // https:// to a plain HTTP coordinator is a TLS failure that says what it likely is.
    let plain = w.coordinator(&[]);
    let https = plain.url.replacen("http://", "https://", 1);
    let ran = w
        .cli(&["wallet", "balance", "--coordinator", &https])
        .fails();
    assert!(ran.stderr.contains("plain HTTP server"), "{}", ran.stderr);

    // A client talks plain HTTP only to this machine, unless told otherwise; 192.0.2.1 is a
    // documentation address nothing answers on.
    let ran = w
        .cli(&[
            "wallet",
            "balance",
            "--coordinator",
            "http://192.0.2.1:7070",
        ])
        .fails();
    assert!(ran.stderr.contains("in clear"), "{}", ran.stderr);
    assert!(ran.stderr.contains("--plain-http"), "{}", ran.stderr);
}

/// A UDP ping has no TLS to hide in: it carries a MAC under the provider's session token, never
/// the token, and a ping replayed by whoever saw it go by is not answered and counts for nothing.
#[test]
fn a_udp_ping_keeps_its_provider_alive_once_and_a_replay_is_ignored() {
    use api::wire::{Ping, PingAck, UDP_PING_LEN};
    let w = World::new();
    let c = w.coordinator(&[]);
    // A provider by hand (funded, staked, registered), then a signed heartbeat for its token.
    let me = c.provider_by_hand();
    let client = &c.http.client;
    let token = c
        .http
        .block_on(client.heartbeat(&me))
        .unwrap()
        .session
        .expect("a session token after a signed heartbeat");

    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(("127.0.0.1", c.port)).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let answer = |datagram: &[u8]| {
        socket.send(datagram).unwrap();
        let mut buf = [0u8; 16];
        socket
            .recv(&mut buf)
            .ok()
            .and_then(|n| PingAck::from_datagram(&buf[..n]))
    };
    let ping = Ping {
        provider: me.id(),
        token,
    }
    .to_datagram(1_000);
    assert_eq!(ping.len(), UDP_PING_LEN);
    assert!(
        !ping.windows(32).any(|w| w == token.0),
        "the token is in the datagram"
    );
    assert_eq!(answer(&ping), Some(PingAck::Alive));
    // The same datagram again, or an older one: no answer.
    assert_eq!(answer(&ping), None);
    let older = Ping {
        provider: me.id(),
        token,
    }
    .to_datagram(999);
    assert_eq!(answer(&older), None);
    // A later one is answered; one made with another token is told to sign again.
    let later = Ping {
        provider: me.id(),
        token,
    }
    .to_datagram(1_001);
    assert_eq!(answer(&later), Some(PingAck::Alive));
    let forged = Ping {
        provider: me.id(),
        token: engine::Hash([1; 32]),
    }
    .to_datagram(5_000);
    assert_eq!(answer(&forged), Some(PingAck::BadToken));
    // The forgery did not spend the counter: the provider's next ping still counts.
    let next = Ping {
        provider: me.id(),
        token,
    }
    .to_datagram(1_002);
    assert_eq!(answer(&next), Some(PingAck::Alive));
}
