//! Validators earn a share of the fees (rules 27) through real processes: on three validators
//! whose genesis names `[staking]` (payouts every second, commissions rising 10 points at once)
//! and a fee per action, a delegator backs validator 0 with `gridmint wallet delegate`, signed
//! actions pay fees, and the treasury pays half of them to the validators, equally by power:
//! validator 0's `earned` is exactly the shares of its `validator_paid` events, each split
//! between its commission, its own stake and its pool to the base unit, and the delegator
//! withdraws exactly what `wallet rewards` showed. A proposal lowers the highest commission to
//! 20%: `gridmint validator commission 30%` is refused, 20% accepted. Delegating to an account
//! that is neither provider nor validator is refused (404). The chain verifies offline.

use super::gov_validators::{decided, propose_and_vote};
use super::validators::{Cluster, fresh_listens};
use crate::support::{WAIT, World, amount, poll};
use api::wire::{HistoryItem, ValidatorsView};
use engine::{AccountId, Amount, Event, tokens};
use std::collections::BTreeMap;

/// What each signed action costs: half of it goes to the validators.
const FEE: Amount = 500_000_000;

/// `gridmint validator list --json` against one validator, parsed.
fn validators(w: &World, url: &str) -> ValidatorsView {
    serde_json::from_value(w.cli_json(url, &["validator", "list"])).unwrap()
}

/// Every history item of `id` on the validator at `http`, oldest first.
fn history(w: &World, http: &crate::support::Http, id: AccountId) -> Vec<HistoryItem> {
    let page = w.block_on(http.client.history(id, None, 500)).unwrap();
    assert_eq!(page.next_before, None, "more than one page of history");
    let mut items = page.items;
    items.reverse();
    items
}

/// The kinds of the events in an action's response.
fn kinds(resp: &serde_json::Value) -> Vec<String> {
    resp["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn validators_are_paid_a_share_of_the_fees_that_their_delegators_share() {
    let w = World::new();
    // The staker (the requester key) votes; the delegator backs validator 0; the treasury is
    // an account of its own, so that every validator's balance is what it was paid.
    let staker = w.cli(&["keys", "--json"]).ok().json()["account"]
        .as_str()
        .unwrap()
        .to_string();
    let delegator_key = w.root().join("delegator.key");
    let delegator = api::Identity::load_or_create(&delegator_key).unwrap().id();
    let key = delegator_key.to_str().unwrap();
    let treasury = crate::support::account(0x71);
    let listens = fresh_listens(3);
    let addresses = listens.iter().map(|l| format!("http://{l}")).collect();
    let cluster = Cluster::start_with(&w, listens, addresses, Vec::new());
    let v0 = cluster.account(0);
    let genesis = std::fs::read_to_string(&cluster.genesis)
        .unwrap()
        .replace("unbonding_delay = \"1m\"", "unbonding_delay = \"2s\"")
        .replace(
            &format!("treasury = \"{v0}\""),
            &format!("treasury = \"{treasury}\""),
        );
    assert!(genesis.contains("\"2s\"") && genesis.contains(&treasury.to_hex()));
    std::fs::write(
        &cluster.genesis,
        format!(
            "action_fee = \"0.5\"\n{genesis}[allocations]\n\"{staker}\" = \"5000\"\n\
             \"{delegator}\" = \"1000\"\n\"{v0}\" = \"10\"\n\
             [staking]\ncommission_step_bps = 1000\nvalidator_payout_every = \"1s\"\n"
        ),
    )
    .unwrap();
    let mut cluster = cluster.spawn_all(&w);
    let urls = cluster.urls();
    let leader = cluster.leader();
    // Reads go to the leader, which has applied every acknowledged action.
    let leader_url = cluster.validators[leader].as_ref().unwrap().url.clone();
    let http = w.http(&leader_url);

    // The genesis's staking rules are in force: the file's keys, the defaults for the rest.
    let view = validators(&w, &leader_url);
    let staking = view.staking.clone().expect("rules 27");
    assert_eq!(
        staking,
        engine::StakingParams {
            commission_step_bps: 1_000,
            validator_payout_every_ms: 1_000,
            ..engine::StakingParams::for_min_stake(tokens(100))
        }
    );
    assert_eq!(view.validators.len(), 3);
    assert!(
        view.validators
            .iter()
            .all(|v| v.bonded == tokens(1000) && v.earned == 0 && v.backing.is_none()),
        "{view:?}"
    );

    // Refused, and nothing logged: backing an account that is neither provider nor validator.
    let nobody = crate::support::account(0x42).to_hex();
    let refused = w
        .cli(&[
            "wallet",
            "delegate",
            &nobody,
            "5",
            "--key",
            key,
            "--coordinator",
            &urls,
        ])
        .fails();
    assert!(
        refused.stderr.contains("404 not_found"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        amount(
            &w.cli_json(&leader_url, &["wallet", "balance", &delegator.to_hex()]),
            "balance"
        ),
        tokens(1000)
    );

    // The delegator backs validator 0 with 100 GRID.
    let delegated = w.cli_json(
        &urls,
        &["wallet", "delegate", &v0.to_hex(), "100", "--key", key],
    );
    assert!(
        kinds(&delegated).contains(&"delegated".into()),
        "{delegated}"
    );
    let backing = validators(&w, &leader_url).validators[0]
        .backing
        .clone()
        .expect("a pool backs validator 0");
    assert_eq!(
        (backing.own, backing.delegated, backing.delegators),
        (tokens(1000), tokens(100), 1)
    );
    assert_eq!(backing.commission_bps, engine::DEFAULT_COMMISSION_BPS);

    // Signed actions pay fees to the treasury: a stake and a few transfers.
    w.cli_json(&urls, &["wallet", "stake", "3000"]);
    let friend = crate::support::account(0x43).to_hex();
    for _ in 0..4 {
        w.cli_json(&urls, &["wallet", "transfer", &friend, "1"]);
    }

    // Within a second or so the validators are paid every fee collected.
    let view = poll("the validators to be paid every fee", WAIT, || {
        let view = validators(&w, &leader_url);
        (view.fees_collected == 0 && view.validators[0].earned > 0).then_some(view)
    });
    let earned: Vec<Amount> = view.validators.iter().map(|v| v.earned).collect();
    assert!(
        earned.iter().all(|e| *e == earned[0]),
        "equal power, equal pay: {earned:?}"
    );

    // The treasury's history: each payout is half the fees counted since the last, a third
    // to each validator (rounded down), and no fee goes unpaid.
    let mut by_entry: BTreeMap<u64, Vec<Event>> = BTreeMap::new();
    for item in history(&w, &http, treasury) {
        by_entry.entry(item.seq).or_default().push(item.event);
    }
    let (mut collected, mut payouts, mut paid) = (0u128, 0u32, BTreeMap::new());
    for events in by_entry.values() {
        for e in events {
            if let Event::ActionFeePaid { amount, .. } = e {
                assert_eq!(*amount, FEE);
                collected += amount;
            }
        }
        let shares: Vec<(AccountId, Amount)> = events
            .iter()
            .filter_map(|e| match e {
                Event::ValidatorPaid {
                    validator, share, ..
                } => Some((*validator, *share)),
                _ => None,
            })
            .collect();
        if shares.is_empty() {
            continue;
        }
        assert_eq!(shares.len(), 3, "{events:?}");
        let each = collected * 5_000 / 10_000 / 3;
        for (validator, share) in shares {
            assert_eq!(share, each, "{events:?}");
            *paid.entry(validator).or_insert(0u128) += share;
        }
        collected = 0;
        payouts += 1;
    }
    assert_eq!(collected, 0, "fees left unpaid");
    assert!(payouts >= 1);
    for v in &view.validators {
        assert_eq!(paid.get(&v.account).copied(), Some(v.earned), "{v:?}");
    }

    // Validator 0's own history: its `earned` is the shares of its `validator_paid` events;
    // each share is split to the base unit — a 10% commission, then the rest by stake, 1,000
    // own to 100 delegated — and its balance is what it kept.
    let mine = history(&w, &http, v0);
    let (mut shares, mut kept, mut pooled) = (0u128, 0u128, 0u128);
    for (i, item) in mine.iter().enumerate() {
        let Event::ValidatorPaid {
            validator,
            amount,
            share,
        } = &item.event
        else {
            continue;
        };
        assert_eq!(*validator, v0);
        let commission = share / 10;
        let to_pool = (share - commission) * 100 / 1_100;
        assert_eq!(*amount, share - to_pool, "{item:?}");
        assert_eq!(
            mine.get(i + 1).map(|next| &next.event),
            Some(&Event::DelegatorsPaid {
                provider: v0,
                amount: to_pool,
                commission,
            }),
            "{mine:?}"
        );
        shares += share;
        kept += amount;
        pooled += to_pool;
    }
    assert_eq!(shares, view.validators[0].earned);
    assert_eq!(kept + pooled, shares);
    let account = w.block_on(http.client.account(v0)).unwrap();
    assert_eq!(account.balance, tokens(10) + kept);
    assert_eq!(
        account.backing.as_ref().map(|b| b.rewards_paid),
        Some(pooled)
    );
    let lines = w
        .cli(&[
            "wallet",
            "history",
            &v0.to_hex(),
            "--coordinator",
            &leader_url,
        ])
        .ok()
        .stdout;
    assert!(lines.contains("validator reward (share"), "{lines}");

    // The delegator's rewards (rounded down per payout), and withdrawing pays exactly them.
    let rewards = w.cli_json(&leader_url, &["wallet", "rewards", "--key", key]);
    let row = &rewards["delegations"][0];
    assert_eq!(row["delegation"]["provider"], v0.to_hex(), "{rewards}");
    assert_eq!(amount(&row["backing"], "rewards_paid"), pooled, "{rewards}");
    let pending = amount(&row["delegation"], "rewards");
    assert!(
        pending > 0 && pending <= pooled && pooled - pending <= u128::from(payouts),
        "pending {pending} of {pooled} over {payouts} payouts"
    );
    let text = w
        .cli(&[
            "wallet",
            "rewards",
            "--key",
            key,
            "--coordinator",
            &leader_url,
        ])
        .ok()
        .stdout;
    assert!(text.contains(&format!("validator  {v0}")), "{text}");
    let before = amount(
        &w.cli_json(&leader_url, &["wallet", "balance", "--key", key]),
        "balance",
    );
    let withdrawn = w.cli_json(&urls, &["wallet", "withdraw-rewards", "--key", key]);
    assert_eq!(
        withdrawn["events"][0]["event"], "rewards_withdrawn",
        "{withdrawn}"
    );
    assert_eq!(amount(&withdrawn["events"][0], "amount"), pending);
    let after = amount(
        &w.cli_json(&leader_url, &["wallet", "balance", "--key", key]),
        "balance",
    );
    assert_eq!(after, before + pending - FEE);

    // Governance lowers the highest commission to 20%; the rest of the rules stay.
    let id = propose_and_vote(&w, &urls, "Cap commissions", &["--max-commission", "20%"]);
    let decided = decided(&w, &leader_url, id);
    assert_eq!(decided["proposal"]["status"], "passed", "{decided}");
    let gov = w.cli_json(&leader_url, &["gov", "list"]);
    assert_eq!(gov["staking"]["max_commission_bps"], 2_000, "{gov}");
    assert_eq!(gov["staking"]["commission_step_bps"], 1_000, "{gov}");
    assert_eq!(gov["staking"]["validator_payout_every_ms"], 1_000, "{gov}");

    // Validator 0 may now take at most 20%: 30% is refused, 20% (a raise of 10 points, the
    // step the genesis allows) accepted.
    let dir = cluster.validators[0].as_ref().unwrap().data_dir.clone();
    let dir = dir.to_str().unwrap();
    let greedy = w
        .cli(&[
            "validator",
            "commission",
            "30%",
            "--data-dir",
            dir,
            "--coordinator",
            &urls,
        ])
        .fails();
    assert!(
        greedy.stderr.contains("422 invalid_commission"),
        "{}",
        greedy.stderr
    );
    let set = w.cli_json(
        &urls,
        &["validator", "commission", "20%", "--data-dir", dir],
    );
    assert!(
        set["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "commission_set" && e["commission_bps"] == 2_000),
        "{set}"
    );
    let info = w
        .cli(&[
            "validator",
            "info",
            &v0.to_hex(),
            "--coordinator",
            &leader_url,
        ])
        .ok()
        .stdout;
    assert!(
        info.contains("commission 20%") && info.contains("100 GRID delegated by 1 delegator(s)"),
        "{info}"
    );

    // Once the last fees are paid and every block is certified, the chain verifies offline
    // from a validator's data dir, to the state the cluster reached.
    poll("the last fees paid and the chain final", WAIT, || {
        if validators(&w, &leader_url).fees_collected > 0 {
            return None;
        }
        let r = w
            .cli(&["chain", "verify", "--coordinator", &leader_url, "--json"])
            .ok()
            .json();
        (r["ok"] == true && r["uncertified_blocks"] == 0 && r["tail_entries"] == 0).then_some(())
    });
    let live = http.status().state_hash;
    let data_dir = cluster.validators[leader]
        .as_ref()
        .unwrap()
        .data_dir
        .clone();
    for v in cluster.validators.iter_mut().flatten() {
        v.proc.terminate();
        v.proc.wait_exit(WAIT);
    }
    let verified = w
        .cli(&[
            "chain",
            "verify",
            "--data-dir",
            data_dir.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(
        verified["state_hash"],
        serde_json::json!(live),
        "{verified}"
    );
}
