//! `GET /metrics` (issue 20): a coordinator's and a provider's Prometheus metrics, scraped from
//! real processes after a job ran — what the state says and what each process counted.

use crate::support::*;

/// The body and content type of `GET url`.
fn scrape(w: &World, url: &str) -> (String, String) {
    let http = reqwest::Client::new();
    w.block_on(async {
        let resp = http.get(url).send().await.expect("an answer");
        assert_eq!(resp.status().as_u16(), 200, "{url}");
        let kind = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (resp.text().await.expect("a body"), kind)
    })
}

/// The value of the sample `name` (with its labels, as written) in `text`.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        (key == name).then(|| value.parse().ok())?
    })
}

/// A free port on loopback (bound, then let go: a race a test can live with).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_coordinator_and_a_provider_serve_their_metrics() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let _p = w.provider_with(&c, 2, &["--metrics", &addr]);
    let job = w.submit(&c.url, &w.write("pi.toml", pi_spec(10_000, 3)));
    c.http.wait_completed(job);
    c.http.job(job);

    let (text, kind) = scrape(&w, &format!("{}/metrics", c.url));
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    for (name, want) in [
        ("gridmint_jobs{status=\"completed\"}", 1.0),
        ("gridmint_jobs{status=\"running\"}", 0.0),
        ("gridmint_providers{state=\"active\"}", 1.0),
        ("gridmint_providers{state=\"suspended\"}", 0.0),
        ("gridmint_runs_total{outcome=\"completed\"}", 3.0),
        ("gridmint_slots{state=\"free\"}", 2.0),
        ("gridmint_tasks_queued{kind=\"new\"}", 0.0),
        ("gridmint_rules", f64::from(engine::RULES)),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in\n{text}");
    }
    // Counted as they happened: the job view just read, and the durable appends.
    let reads = sample(
        &text,
        "gridmint_http_requests_total{route=\"/v1/jobs/{id}\",method=\"GET\",status=\"200\"}",
    );
    assert!(reads >= Some(1.0), "{text}");
    assert!(
        sample(&text, "gridmint_commit_seconds_count") > Some(0.0),
        "{text}"
    );
    assert!(
        sample(&text, "gridmint_log_append_seconds_count") > Some(0.0),
        "{text}"
    );
    assert!(sample(&text, "gridmint_log_entries") > Some(0.0), "{text}");

    let (text, kind) = scrape(&w, &format!("http://{addr}/metrics"));
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    assert_eq!(
        sample(&text, "gridmint_provider_runs_total{outcome=\"succeeded\"}"),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "gridmint_provider_slots"),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(&text, "gridmint_provider_energy_joules_total") > Some(0.0),
        "{text}"
    );
    let states: f64 = ["working", "waiting", "suspended", "handed_back"]
        .iter()
        .filter_map(|s| sample(&text, &format!("gridmint_provider_state{{state=\"{s}\"}}")))
        .sum();
    assert_eq!(states, 1.0, "{text}");

    // Every metric the example Grafana dashboard draws is one of these (the provider's
    // standing comes from its look at the network, every 30 s: not yet here).
    let coordinator = scrape(&w, &format!("{}/metrics", c.url)).0;
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana-dashboard.json"
    ))
    .unwrap();
    let standing = [
        "gridmint_provider_earned_base_units",
        "gridmint_provider_reputation",
        "gridmint_provider_trusted",
        "gridmint_provider_bonded_base_units",
    ];
    let mut drawn = 0;
    for piece in dashboard.split("gridmint_").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let name = format!("gridmint_{name}");
        let base = name
            .strip_suffix("_bucket")
            .or(name.strip_suffix("_total"))
            .unwrap_or(&name);
        if standing.contains(&base) {
            continue;
        }
        let help = format!("# HELP {base} ");
        assert!(
            coordinator.contains(&help) || text.contains(&help),
            "the dashboard draws {name}, which no scrape has"
        );
        drawn += 1;
    }
    assert!(drawn > 20, "{drawn}");
}
