//! Governance (rules 25) through real processes: on a network whose votes last 3 s, a staker
//! proposes a lower protocol fee with `gridmint gov propose`, votes for it, the network decides it
//! at the first entry after the vote ends, and jobs after that pay the new fee; bad proposals and
//! votes change nothing; the price index shows those payments and a job priced "market + 150%"
//! locks what that resolves to; the chain replays offline across the change.

use crate::support::*;
use engine::{AccountId, Event};
use std::time::{Duration, Instant};

fn cli_json(w: &World, url: &str, args: &[&str]) -> serde_json::Value {
    w.cli_json(url, args)
}

#[test]
fn a_proposal_lowers_the_fee_and_later_jobs_pay_the_new_fee() {
    let w = World::new();
    let treasury = AccountId([0x77; 32]);
    let genesis = w.money_genesis("gov-e2e", treasury);
    let c = w.coordinator(&["--genesis", genesis.to_str().unwrap()]);
    let (provider_dir, provider_id) = w.provider_dir();
    let p = w.provider_in(&c.url, &provider_dir, provider_id, 2);
    p.wait_active(&c.http);
    let gov = cli_json(&w, &c.url, &["gov", "list"]);
    assert_eq!(gov["params"]["voting_period_ms"], 3_000);
    assert_eq!(gov["params"]["min_deposit"], "100000000000");

    // The requester stakes 500 of the faucet's 1000: 500 of the 600 GRID of voting power.
    cli_json(&w, &c.url, &["wallet", "faucet"]);
    cli_json(&w, &c.url, &["wallet", "stake", "500"]);

    // Refused, nothing changed: no change, a fee over 100%, a vote on no proposal. (The
    // provider logs its own actions meanwhile: what is compared is the signer's account and the
    // proposals.)
    let mine_before = cli_json(&w, &c.url, &["wallet", "balance"]);
    let none = w
        .cli(&[
            "gov",
            "propose",
            "--title",
            "nothing",
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(none.stderr.contains("needs a change"), "{}", none.stderr);
    let over = w
        .cli(&[
            "gov",
            "propose",
            "--title",
            "all of it",
            "--fee",
            "15000",
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(over.stderr.contains("invalid proposal"), "{}", over.stderr);
    let nobody = w
        .cli(&["gov", "vote", "99", "yes", "--coordinator", &c.url])
        .fails();
    assert!(nobody.stderr.contains("404"), "{}", nobody.stderr);
    assert_eq!(cli_json(&w, &c.url, &["wallet", "balance"]), mine_before);
    assert_eq!(
        cli_json(&w, &c.url, &["gov", "list"])["proposals"],
        serde_json::json!([])
    );

    let proposed = cli_json(
        &w,
        &c.url,
        &[
            "gov",
            "propose",
            "--title",
            "Lower the fee to 2%",
            "--fee",
            "2%",
        ],
    );
    assert_eq!(proposed["events"][0]["event"], "proposed");
    let id = proposed["events"][0]["proposal"].as_u64().unwrap();
    cli_json(&w, &c.url, &["gov", "vote", &id.to_string(), "yes"]);
    let shown = w
        .cli(&["gov", "show", &id.to_string(), "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(
        shown.contains("voting until") && shown.contains("protocol fee 2%"),
        "{shown}"
    );

    // Decided at the first entry after the vote ends (the provider's own traffic brings one).
    let started = Instant::now();
    let decided = loop {
        let v = cli_json(&w, &c.url, &["gov", "show", &id.to_string()]);
        if v["proposal"]["status"] != "voting" {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never decided: {v}"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(decided["proposal"]["status"], "passed", "{decided}");
    assert_eq!(decided["tally"]["yes"], "500000000000");
    assert_eq!(decided["tally"]["total"], "600000000000");
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.fee_bps, 200);

    // A job after the change pays 2% on each result.
    w.fund_requester(&c.url);
    let spec = w.write("pi.toml", pi_spec(10_000, 3));
    let job = w.submit(&c.url, &spec);
    c.http.wait_completed(job);
    let history = w
        .block_on(c.http.client.history(p.id, None, 500))
        .unwrap()
        .items;
    let mut paid = 0;
    for item in &history {
        if let Event::TaskPaid {
            task, amount, fee, ..
        } = &item.event
            && task.job == job
        {
            assert_eq!(*fee, (amount + fee) * 200 / 10_000, "{task}");
            paid += 1;
        }
    }
    assert!(paid >= 3, "{paid} payments");
    let listed = w.cli(&["gov", "list", "--coordinator", &c.url]).ok().stdout;
    assert!(
        listed.contains("passed") && listed.contains("Lower the fee"),
        "{listed}"
    );

    // The price index saw those payments at the provider's price, 1 per fuel; a job may follow
    // it: "market + 150%" is 2.5, rounded up to 3, which its escrow locks for every task.
    let market = cli_json(&w, &c.url, &["market"]);
    let cpu = market["classes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["class"] == "cpu")
        .unwrap_or_else(|| panic!("no cpu class in {market}"))
        .clone();
    assert_eq!(
        (cpu["median"].as_str(), cpu["high"].as_str()),
        (Some("1"), Some("1"))
    );
    assert!(cpu["payments"].as_u64().unwrap() >= 3, "{cpu}");
    let text = w.cli(&["market", "--coordinator", &c.url]).ok().stdout;
    assert!(text.contains("cpu") && text.contains("median"), "{text}");
    let spec = w.write(
        "pi-market.toml",
        pi_spec(10_000, 2).replace("max_price = 1", "max_price = \"market + 150%\""),
    );
    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_completed(job);
    assert_eq!(view.escrow.locked, 3 * 2 * (10_000 * 1000 + 100_000_000));

    // The chain replays offline across the change.
    drop(p);
    w.verify_offline(c);
}
