//! The token ledger through real processes: a `--dev` network whose providers stake from the
//! faucet and earn for their results while the requester's escrow is charged and refunded; the
//! `wallet` commands; refusals that change nothing; a network from a genesis file, which has no
//! faucet; and a data dir that refuses a different genesis.

use crate::support::*;
use engine::{AccountId, tokens};
use std::time::Duration;

/// `gridmint wallet ARGS --coordinator URL --json`, parsed.
fn wallet(w: &World, url: &str, args: &[&str]) -> serde_json::Value {
    w.cli_json(url, &[&["wallet"], args].concat())
}

fn balance(w: &World, url: &str, who: &AccountId) -> serde_json::Value {
    wallet(w, url, &["balance", &who.to_hex()])
}

#[test]
fn a_dev_network_pays_providers_charges_escrow_and_refunds_the_rest() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.faucet, Some(tokens(1_000)));
    let (provider_dir, provider_id) = w.provider_dir();
    let p = w.provider_in(&c.url, &provider_dir, provider_id, 2);
    p.wait_active(&c.http);

    // The provider bonded the minimum stake from the faucet before registering.
    let pv = balance(&w, &c.url, &p.id);
    assert_eq!(amount(&pv, "bonded"), network.min_stake);
    // Every logged action but a report and the faucet costs the fee per action (rules 8): the
    // provider paid it twice, to stake and to register.
    let fee = network.action_fee;
    assert_eq!(fee, engine::DEV_ACTION_FEE);
    assert_eq!(
        amount(&pv, "balance"),
        tokens(1_000) - network.min_stake - 2 * fee
    );

    // The requester: nothing until the faucet, which then refuses a full account.
    let me = w.cli(&["keys", "--json"]).ok().json()["account"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = wallet(&w, &c.url, &["balance"]);
    assert_eq!(mine["id"], me.as_str());
    assert_eq!(amount(&mine, "balance"), 0);
    let paid = wallet(&w, &c.url, &["faucet"]);
    assert_eq!(paid["events"][0]["event"], "faucet_paid");
    let refused = w
        .cli(&["wallet", "faucet", "--coordinator", &c.url])
        .fails();
    assert!(
        refused.stderr.contains("faucet_refused"),
        "{}",
        refused.stderr
    );

    // Transfers: to a fresh account, visible in both histories; an overdraft is refused.
    let friend = crate::support::account(0x42);
    wallet(&w, &c.url, &["transfer", &friend.to_hex(), "12.5"]);
    // Not to an id no key signs for (not a point, or a small-order one): the tokens would be
    // lost for good. A 400 that says why, nothing logged.
    let status = c.http.status();
    let small_order = AccountId([0; 32]);
    let not_a_point = (1..=255)
        .map(|n| AccountId([n; 32]))
        .find(|id| !api::valid_account(id) && id.0 != [0; 32])
        .unwrap();
    for bad in [small_order, not_a_point] {
        assert!(!api::valid_account(&bad));
        let refused = w
            .cli(&[
                "wallet",
                "transfer",
                &bad.to_hex(),
                "1",
                "--coordinator",
                &c.url,
            ])
            .fails();
        assert!(
            refused.stderr.contains("400") && refused.stderr.contains("not an account"),
            "{}",
            refused.stderr
        );
    }
    assert_eq!(c.http.status().log_length, status.log_length);
    assert_eq!(
        amount(&balance(&w, &c.url, &friend), "balance"),
        12_500_000_000
    );
    let status = c.http.status();
    let overdraft = w
        .cli(&[
            "wallet",
            "transfer",
            &friend.to_hex(),
            "1000000",
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(overdraft.stderr.contains("402"), "{}", overdraft.stderr);
    assert_eq!(
        c.http.status().log_length,
        status.log_length,
        "a refusal was logged"
    );
    let history = wallet(&w, &c.url, &["history", &friend.to_hex()]);
    assert_eq!(history[0]["event"]["event"], "transferred");
    assert_eq!(history[0]["event"]["amount"], "12500000000");
    let text = w
        .cli(&["wallet", "history", "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(
        text.contains(&format!(
            "-12.5 GRID  transfer to {}",
            &friend.to_hex()[..6]
        )),
        "{text}"
    );
    assert!(text.contains("+1000 GRID  faucet"), "{text}");
    assert!(text.contains("-0.0001 GRID  fee per action"), "{text}");

    // A job: its worst case is locked, each result paid at the provider's price less the 5% fee,
    // and the rest comes back when it completes.
    // (Topped up first: `submit` asks the faucet too, which would blur the arithmetic.)
    w.fund_requester(&c.url);
    let before = amount(&wallet(&w, &c.url, &["balance"]), "balance");
    assert_eq!(before, tokens(2_000) - 12_500_000_000 - fee);
    let spec = w.write("pi.toml", pi_spec(10_000, 4));
    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_completed(job);
    let mine = wallet(&w, &c.url, &["balance"]);
    assert_eq!(amount(&mine, "in_escrow"), 0);
    // Its storage deposit stays until the job is released (a day on a dev network).
    let deposit = view.storage.as_ref().expect("a storage deposit").deposit;
    assert!(deposit > 0);
    assert_eq!(amount(&mine, "in_storage"), deposit);
    let spent = before - amount(&mine, "balance") - deposit;
    let fuel = u128::from(view.fuel_used);
    assert_eq!(
        spent,
        fuel + fee,
        "charged fuel × price 1, and the fee to submit"
    );
    let escrow = &view.escrow;
    assert_eq!(escrow.paid, fuel);
    assert_eq!(escrow.locked, escrow.paid + escrow.refunded);
    assert_eq!(
        escrow.locked,
        4 * (10_000 * 1000 + 100_000_000),
        "tasks × fuel limit × 1"
    );
    let pv = balance(&w, &c.url, &p.id);
    let earned = amount(&pv, "balance") - (tokens(1_000) - network.min_stake - 2 * fee);
    // The treasury: the fee out of each payment, and four fees per action (the provider's
    // stake and registration, the transfer, the submission).
    let treasury = amount(&balance(&w, &c.url, &network.treasury), "balance");
    let task_fees = treasury - 4 * fee;
    assert_eq!(
        earned + task_fees,
        fuel,
        "the provider and the treasury got what was spent"
    );
    assert!(
        task_fees > 0 && task_fees * 100 <= fuel * 5,
        "fee {task_fees} of {fuel}"
    );
    let history = wallet(&w, &c.url, &["history"]);
    let kinds: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["event"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds[..4],
        [
            "escrow_refunded",
            "action_fee_paid",
            "storage_deposited",
            "escrow_locked"
        ],
        "{kinds:?}"
    );

    // Stake: an active provider cannot drop below the minimum; extra stake unbonds.
    let dir = provider_dir.to_str().unwrap();
    let locked = w
        .cli(&[
            "wallet",
            "unstake",
            "1",
            "--data-dir",
            dir,
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(locked.stderr.contains("stake_locked"), "{}", locked.stderr);
    wallet(&w, &c.url, &["stake", "5", "--data-dir", dir]);
    let unbonding = wallet(&w, &c.url, &["unstake", "5", "--data-dir", dir]);
    assert_eq!(unbonding["events"][0]["event"], "unbonding_started");
    let pv = balance(&w, &c.url, &p.id);
    assert_eq!(amount(&pv, "bonded"), network.min_stake);
    assert_eq!(amount(&pv["unbonding"][0], "amount"), tokens(5));

    // The supply is what genesis and the faucet made: nothing burned, nothing lost.
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.supply_minted, tokens(3_000));
    assert_eq!(network.supply_burned, 0);

    // The whole chain replays to the same balances offline.
    drop(p);
    w.verify_offline(c);
}

#[test]
fn a_genesis_file_network_has_no_faucet_and_refuses_unfunded_jobs() {
    let w = World::new();
    let key = w.dir("rich").join("key");
    let rich = api::Identity::load_or_create(&key).unwrap();
    let treasury = AccountId([0x77; 32]);
    let genesis = w.write(
        "genesis.toml",
        format!(
            r#"chain_id = "e2e"
treasury = "{treasury}"
fee_bps = 100
min_stake = "50"
unbonding_delay = "1h"
[slash]
fraction_bps = 1000
requester_bps = 5000
treasury_bps = 5000
[allocations]
"{rich}" = "500"
"#,
            rich = rich.id()
        ),
    );
    let c = w.coordinator(&["--genesis", genesis.to_str().unwrap()]);
    // No [storage]: results are final at completion, and the operator is told so.
    assert!(
        c.proc
            .logs()
            .contains("warning: this genesis has no [storage]"),
        "{}",
        c.proc.logs()
    );
    let network = w.block_on(c.http.client.network()).unwrap();
    assert_eq!(network.chain_id, "e2e");
    assert_eq!(network.faucet, None);
    assert_eq!(network.supply_genesis, tokens(500));

    // The leader's first entry (the audit beacon's commitment) comes at its first tick, which
    // on a loaded machine may come after this point: wait for it, so that nothing but the
    // refused requests below could change the log.
    let s0 = poll("the leader's first entry", Duration::from_secs(30), || {
        let s = c.http.status();
        (s.log_length >= 1).then_some(s)
    });
    let faucet = w
        .cli(&["wallet", "faucet", "--coordinator", &c.url])
        .fails();
    assert!(
        faucet.stderr.contains("faucet_disabled"),
        "{}",
        faucet.stderr
    );
    // The requester has nothing: its job is refused with the cost it would lock.
    let spec = w.write("pi.toml", pi_spec(10_000, 2));
    let submit = w
        .cli(&[
            "job",
            "submit",
            spec.to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .fails();
    assert!(
        submit.stderr.contains("insufficient_funds"),
        "{}",
        submit.stderr
    );
    assert!(submit.stderr.contains("escrow"), "{}", submit.stderr);
    let s1 = c.http.status();
    assert_eq!(
        (s1.log_length, s1.state_hash),
        (s0.log_length, s0.state_hash)
    );

    // Funded by the allocation's owner, the same job is accepted.
    let me = w.cli(&["keys", "--json"]).ok().json()["account"]
        .as_str()
        .unwrap()
        .to_string();
    w.cli(&[
        "wallet",
        "transfer",
        &me,
        "100",
        "--key",
        key.to_str().unwrap(),
        "--coordinator",
        &c.url,
    ])
    .ok();
    w.cli(&[
        "job",
        "submit",
        spec.to_str().unwrap(),
        "--coordinator",
        &c.url,
    ])
    .ok();

    // A provider without stake on a network without a faucet cannot register, and says why.
    let (dir, id) = w.provider_dir();
    let mut lonely = w.provider_in(&c.url, &dir, id, 1);
    let status = lonely.proc.wait_exit(Duration::from_secs(30));
    assert!(!status.success());
    let logs = lonely.proc.logs();
    assert!(logs.contains("wallet stake"), "{logs}");

    // The data dir keeps its genesis: --dev (a different one) is refused.
    let mut c = c;
    c.proc.terminate();
    c.proc.wait_exit(WAIT);
    let data_dir = c.data_dir.clone();
    let ran = w
        .cli(&[
            "coordinator",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ])
        .fails();
    assert!(ran.stderr.contains("different genesis"), "{}", ran.stderr);
}
