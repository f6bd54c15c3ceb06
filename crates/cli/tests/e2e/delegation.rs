//! Delegated staking (rules 25) through real processes: a provider sets its commission, a
//! delegator backs it with the `wallet` commands, earns its share of the provider's payments for
//! a real job (exactly what the chain says), withdraws it and undelegates; refusals change
//! nothing; the chain replays offline.

use crate::support::*;
use engine::{Event, tokens};

/// `gridmint wallet ARGS --coordinator URL --json`, parsed.
fn wallet(w: &World, url: &str, args: &[&str]) -> serde_json::Value {
    w.cli_json(url, &[&["wallet"], args].concat())
}

#[test]
fn a_delegator_backs_a_provider_earns_its_share_withdraws_and_leaves() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.rules, engine::RULES);
    let fee = network.action_fee;
    let (provider_dir, provider_id) = w.provider_dir();
    let p = w.provider_in(&c.url, &provider_dir, provider_id, 2);
    p.wait_active(&c.http);
    let dir = provider_dir.to_str().unwrap();

    // Refusals change nothing: too little, an unknown provider, a commission over 50%. (The
    // provider logs its own actions meanwhile, so what is compared is the signers' accounts.)
    w.fund_requester(&c.url);
    let mine_before = wallet(&w, &c.url, &["balance"]);
    let tiny = w
        .cli(&[
            "wallet",
            "delegate",
            &p.id.to_hex(),
            "1 base",
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(tiny.stderr.contains("invalid_amount"), "{}", tiny.stderr);
    let nobody = crate::support::account(0x42).to_hex();
    let unknown = w
        .cli(&["wallet", "delegate", &nobody, "5", "--coordinator", &c.url])
        .fails();
    assert!(unknown.stderr.contains("404"), "{}", unknown.stderr);
    let greedy = w
        .cli(&[
            "wallet",
            "commission",
            "60%",
            "--data-dir",
            dir,
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(
        greedy.stderr.contains("invalid commission"),
        "{}",
        greedy.stderr
    );
    assert_eq!(wallet(&w, &c.url, &["balance"]), mine_before);
    let provider_view = w.block_on(c.http.client.provider(p.id)).unwrap();
    assert_eq!(
        provider_view.backing, None,
        "a refused commission made a pool"
    );
    // The provider takes 20% before its delegators share the rest.
    let set = wallet(&w, &c.url, &["commission", "20%", "--data-dir", dir]);
    assert_eq!(set["events"][0]["event"], "commission_set");
    assert_eq!(set["events"][0]["commission_bps"], 2_000);

    // The requester's key backs it with 300 GRID.
    let before = amount(&wallet(&w, &c.url, &["balance"]), "balance");
    let delegated = wallet(&w, &c.url, &["delegate", &p.id.to_hex(), "300"]);
    assert_eq!(delegated["events"][0]["event"], "delegated");
    let mine = wallet(&w, &c.url, &["balance"]);
    assert_eq!(amount(&mine, "balance"), before - tokens(300) - fee);
    assert_eq!(amount(&mine["delegations"][0], "amount"), tokens(300));
    let backing = w
        .block_on(c.http.client.provider(p.id))
        .unwrap()
        .backing
        .expect("a pool");
    assert_eq!(
        (backing.own, backing.delegated, backing.delegators),
        (network.min_stake, tokens(300), 1)
    );
    assert_eq!(backing.commission_bps, 2_000);

    // A real job: each payment is split, and the delegator's rewards are what the chain paid
    // its pool, to the base unit (less at most a base unit per payment of rounding, which stays
    // in the pool).
    let spec = w.write("pi.toml", pi_spec(10_000, 4));
    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_completed(job);
    let history = w
        .block_on(c.http.client.history(p.id, None, 500))
        .unwrap()
        .items;
    let (mut kept, mut pooled, mut fees, mut payments) = (0u128, 0u128, 0u128, 0u128);
    for item in &history {
        match &item.event {
            Event::TaskPaid {
                task, amount, fee, ..
            } if task.job == job => {
                kept += amount;
                fees += fee;
                payments += 1;
            }
            Event::DelegatorsPaid {
                amount, commission, ..
            } => {
                pooled += amount;
                // 20% of the net payment stayed with the provider; of the rest the pool backs
                // 300 of 400 GRID: three quarters.
                let net_rest = amount * 4 / 3;
                assert!(
                    commission * 4 <= net_rest + 4 && net_rest <= commission * 4 + 4,
                    "{commission} is not a fifth of {}",
                    net_rest + commission
                );
            }
            _ => {}
        }
    }
    assert!(payments >= 4, "{payments} payments");
    assert!(pooled > 0);
    assert_eq!(
        kept + pooled + fees,
        view.escrow.paid,
        "the escrow paid the provider, its delegators and the fee"
    );
    let rewards = wallet(&w, &c.url, &["rewards"]);
    let pending = amount(&rewards["delegations"][0]["delegation"], "rewards");
    assert!(
        pending <= pooled && pooled - pending <= payments,
        "pending {pending} of {pooled}"
    );
    assert_eq!(
        amount(&rewards["delegations"][0]["backing"], "rewards_paid"),
        pooled
    );
    let text = w
        .cli(&["wallet", "rewards", "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(text.contains("realised"), "{text}");
    let info = w
        .cli(&["provider", "info", &p.id.to_hex(), "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(
        info.contains("backing    300 GRID delegated by 1 delegator(s)")
            && info.contains("commission 20%"),
        "{info}"
    );

    // Withdrawing pays the rewards; undelegating everything leaves the pool empty and the
    // tokens unbonding (slashable) until the network's delay passes.
    let before = amount(&wallet(&w, &c.url, &["balance"]), "balance");
    let withdrawn = wallet(&w, &c.url, &["withdraw-rewards"]);
    assert_eq!(withdrawn["events"][0]["event"], "rewards_withdrawn");
    let after = amount(&wallet(&w, &c.url, &["balance"]), "balance");
    assert_eq!(after, before + pending - fee);
    let left = wallet(&w, &c.url, &["undelegate", &p.id.to_hex(), "--all"]);
    let kinds: Vec<&str> = left["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"undelegated"), "{kinds:?}");
    let mine = wallet(&w, &c.url, &["balance"]);
    assert!(mine.get("delegations").is_none(), "{mine}");
    assert_eq!(
        amount(&mine["delegation_unbonding"][0], "amount"),
        tokens(300)
    );
    let backing = w
        .block_on(c.http.client.provider(p.id))
        .unwrap()
        .backing
        .unwrap();
    assert_eq!((backing.delegated, backing.delegators), (0, 0));
    assert_eq!(backing.rewards_paid, pooled);
    let history = wallet(&w, &c.url, &["history"]);
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"]["event"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"delegated") && kinds.contains(&"rewards_withdrawn"),
        "{kinds:?}"
    );

    // The supply is what genesis and the faucet made, and the chain replays offline.
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.supply_burned, 0);
    drop(p);
    w.verify_offline(c);
}
