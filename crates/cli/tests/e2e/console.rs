//! The web console (issue 20): its routes over HTTP, and a person's visit in a real browser —
//! headless Chromium driven by Playwright (`tests/browser/console.mjs`) against a coordinator
//! and providers running as processes, screenshots under `target/console-screenshots/`.

use crate::support::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn get(w: &World, url: &str) -> reqwest::Response {
    let http = reqwest::Client::new();
    w.block_on(async { http.get(url).send().await.expect("an answer") })
}

fn json(w: &World, url: &str) -> (u16, serde_json::Value) {
    let resp = get(w, url);
    let status = resp.status().as_u16();
    (status, w.block_on(resp.json()).expect("a JSON body"))
}

#[test]
fn the_console_and_its_feeds_are_served() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _p = w.provider(&c, 2);
    let job = w.submit(&c.url, &w.write("pi.toml", pi_spec(10_000, 3)));
    c.http.wait_completed(job);
    let other = w.submit(&c.url, &w.write("pi2.toml", pi_spec(10_000, 2)));
    c.http.wait_completed(other);

    // The API's description: OpenAPI 3.1, every route (the contract test in CI, `.ci/contract`,
    // checks the answers against it).
    let (status, doc) = json(&w, &format!("{}/v1/openapi.json", c.url));
    assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
    for route in ["/v1/jobs/{id}", "/v1/actions", "/v1/events", "/"] {
        assert!(doc["paths"].get(route).is_some(), "{route}");
    }
    assert!(doc["components"]["schemas"].get("JobView").is_some());

    // The page, its script and style, under a policy that runs nothing but its own files.
    let page = get(&w, &format!("{}/", c.url));
    assert_eq!(page.status().as_u16(), 200);
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    let index = w.block_on(page.text()).unwrap();
    assert!(index.contains("/console/console.js"));
    for (file, kind) in [
        ("console.js", "text/javascript"),
        ("console.css", "text/css"),
    ] {
        let resp = get(&w, &format!("{}/console/{file}", c.url));
        assert_eq!(resp.status().as_u16(), 200, "{file}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
    }
    // Governance and the validators (rules 25–27), and the console's page of them. A single
    // coordinator has no validator set: the list is empty, the parameters are the defaults.
    let script = w
        .block_on(get(&w, &format!("{}/console/console.js", c.url)).text())
        .unwrap();
    for feed in ["/v1/proposals", "/v1/validators"] {
        assert!(script.contains(feed), "console.js never reads {feed}");
    }
    for link in ["#/governance", "#/validators"] {
        assert!(index.contains(link), "the console's nav has no {link}");
    }
    let (status, gov) = json(&w, &format!("{}/v1/proposals", c.url));
    assert_eq!(status, 200, "{gov}");
    assert_eq!(gov["params"]["quorum_bps"], 3_340, "{gov}");
    for field in [
        "min_deposit",
        "voting_period_ms",
        "threshold_bps",
        "veto_bps",
    ] {
        assert!(gov["params"].get(field).is_some(), "{field}: {gov}");
    }
    assert!(gov["proposals"].as_array().unwrap().is_empty(), "{gov}");
    let (status, vals) = json(&w, &format!("{}/v1/validators", c.url));
    assert_eq!(status, 200, "{vals}");
    assert!(vals["validators"].as_array().unwrap().is_empty(), "{vals}");
    assert!(vals["fees_collected"].is_string(), "{vals}");

    let (status, body) = json(&w, &format!("{}/console/../Cargo.toml", c.url));
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _) = json(&w, &format!("{}/console/secret.key", c.url));
    assert_eq!(status, 404);

    // Jobs, newest first, a page at a time, by owner.
    let (status, page) = json(&w, &format!("{}/v1/jobs", c.url));
    assert_eq!(status, 200);
    let ids: Vec<u64> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [other, job]);
    let (_, first) = json(&w, &format!("{}/v1/jobs?limit=1", c.url));
    assert_eq!(first["jobs"][0]["id"], other);
    let before = first["next_before"].as_u64().expect("a next page");
    let (_, second) = json(&w, &format!("{}/v1/jobs?limit=1&before={before}", c.url));
    assert_eq!(second["jobs"][0]["id"], job);
    assert!(second.get("next_before").is_none(), "{second}");
    let owner = first["jobs"][0]["owner"].as_str().unwrap().to_string();
    let (_, mine) = json(&w, &format!("{}/v1/jobs?owner={owner}", c.url));
    assert_eq!(mine["jobs"].as_array().unwrap().len(), 2);
    let (_, none) = json(&w, &format!("{}/v1/jobs?owner={}", c.url, "ab".repeat(32)));
    assert_eq!(none["jobs"].as_array().unwrap().len(), 0);
    for bad in ["owner=zz", "limit=-1", "before=x"] {
        let (status, body) = json(&w, &format!("{}/v1/jobs?{bad}", c.url));
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }

    // The log decoded: what the raw entries hold, named.
    let (status, inputs) = json(&w, &format!("{}/v1/chain/inputs?from=1&limit=500", c.url));
    assert_eq!(status, 200);
    let inputs = inputs.as_array().unwrap();
    let (_, chain) = json(&w, &format!("{}/v1/chain", c.url));
    let logged = chain["log_length"].as_u64().unwrap();
    assert_eq!(
        inputs.len() as u64,
        logged.min(200),
        "a page holds at most 200"
    );
    assert_eq!(inputs[0]["seq"], 1);
    assert!(
        inputs
            .iter()
            .any(|e| e["kind"] == "action" && e["name"] == "submit_job_with_storage"),
        "{inputs:?}"
    );
    let (_, raw) = json(&w, &format!("{}/v1/chain/entries?from=1&limit=5", c.url));
    let (_, five) = json(&w, &format!("{}/v1/chain/inputs?from=1&limit=5", c.url));
    assert_eq!(
        raw.as_array().unwrap().len(),
        five.as_array().unwrap().len()
    );
    let (status, _) = json(&w, &format!("{}/v1/chain/inputs?from=x", c.url));
    assert_eq!(status, 400);

    // The output of a job is served as what its bytes are.
    let output = get(&w, &format!("{}/v1/jobs/{job}/output", c.url));
    assert_eq!(
        output.headers()["content-type"],
        "application/octet-stream",
        "pi's output is text, not an image"
    );

    // The live feed: the pulse at once, as server-sent events; the kept ones.
    let http = reqwest::Client::new();
    let first_event = w.block_on(async {
        let mut resp = http
            .get(format!("{}/v1/events", c.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let mut text = String::new();
        while !text.contains("\n\n") {
            let chunk = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream stays open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        text
    });
    assert!(
        first_event.starts_with("event: pulse\ndata: "),
        "{first_event}"
    );
    let data: serde_json::Value = serde_json::from_str(
        first_event
            .trim_end()
            .strip_prefix("event: pulse\ndata: ")
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data["jobs"]["completed"], 2, "{data}");
    assert_eq!(data["providers"]["active"], 1, "{data}");
    assert_eq!(data["slots_total"], 2, "{data}");
    let kept = poll("a kept pulse", Duration::from_secs(15), || {
        let (_, kept) = json(&w, &format!("{}/v1/pulses", c.url));
        (!kept.as_array().unwrap().is_empty()).then_some(kept)
    });
    assert!(kept[0]["at"].as_u64().unwrap() > 0, "{kept}");

    // One address holds at most 8 streams: the ninth is refused, the others keep flowing.
    let refused = w.block_on(async {
        let mut open = Vec::new();
        for _ in 0..8 {
            let resp = http
                .get(format!("{}/v1/events", c.url))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            open.push(resp);
        }
        let ninth = http
            .get(format!("{}/v1/events", c.url))
            .send()
            .await
            .unwrap();
        let status = ninth.status().as_u16();
        let retry = ninth.headers().contains_key("retry-after");
        drop(open);
        (status, retry)
    });
    assert_eq!(refused, (429, true));
    // Closed streams are given back.
    poll("streams given back", Duration::from_secs(10), || {
        let resp = get(&w, &format!("{}/v1/events", c.url));
        (resp.status().as_u16() == 200).then_some(())
    });
}

/// What the browser test needs: Node, Chromium, and `npm ci` run in `tests/browser`.
fn browser_ready() -> Result<(), String> {
    let modules = repo().join("tests/browser/node_modules/playwright-core");
    if !modules.exists() {
        return Err(format!(
            "{} is missing (run `npm ci` in tests/browser)",
            modules.display()
        ));
    }
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"];
    if std::env::var_os("CHROMIUM").is_none() && !chromium.iter().any(|p| Path::new(p).exists()) {
        return Err("no Chromium (Debian: apt-get install chromium)".into());
    }
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err("no node".into()),
    }
}

#[test]
fn a_person_follows_a_job_in_the_console() {
    if let Err(why) = browser_ready() {
        // CI installs all of it and sets GRIDMINT_BROWSER_TESTS=required, so there it fails.
        assert!(
            std::env::var("GRIDMINT_BROWSER_TESTS").as_deref() != Ok("required"),
            "the browser test cannot run: {why}"
        );
        eprintln!("skipped: {why}; `.ci/run` installs what it needs");
        return;
    }
    let w = World::new();
    let c = w.coordinator(&[]);
    let _providers: Vec<_> = (0..3).map(|_| w.provider(&c, 1)).collect();
    let spec = repo().join("examples/mandelbrot.toml");
    let job = w.submit(&c.url, &spec);
    let shots = repo().join("target/console-screenshots");
    let out = Command::new("node")
        .arg(repo().join("tests/browser/console.mjs"))
        .args([&c.url, &job.to_string()])
        .arg(&shots)
        .output()
        .expect("running node");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the browser test failed (screenshots in {}):\n{said}",
        shots.display()
    );
    assert!(said.contains("console test passed"), "{said}");
    for name in [
        "1-network",
        "2-job",
        "3-output",
        "4-provider",
        "5-block",
        "6-jobs",
        "7-governance",
    ] {
        assert!(shots.join(format!("{name}.png")).exists(), "{name}.png");
    }
}
