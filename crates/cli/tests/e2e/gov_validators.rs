//! Governance changes the validator set (rules 26) through real processes: on three validators
//! whose votes last 2 s, a staker proposes with `gridmint gov propose --add-validator` a fourth
//! that bonded the minimum stake and votes for it; once the vote ends the newcomer (started with
//! `--join`) catches up and takes part. A second proposal `--remove-validator` takes one of the
//! original three out: the consensus membership drops it and the rest go on, the chain verifying
//! across both changes. Proposing to add a validator already in the set is refused (422).

use super::validators::{Cluster, fresh_listens, verified_and_signed_by};
use crate::support::{WAIT, World, poll};

/// `gridmint gov propose --title TITLE CHANGE... --json` as the staker, then its yes vote: the
/// proposal's id.
pub(super) fn propose_and_vote(w: &World, urls: &str, title: &str, change: &[&str]) -> u64 {
    let proposed = w.cli_json(
        urls,
        &[&["gov", "propose", "--title", title][..], change].concat(),
    );
    let id = proposed["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "proposed")
        .unwrap_or_else(|| panic!("no proposed event: {proposed}"))["proposal"]
        .as_u64()
        .unwrap();
    w.cli_json(urls, &["gov", "vote", &id.to_string(), "yes"]);
    id
}

/// Waits until proposal `id` is decided (at the first entry after its vote ends); its view.
pub(super) fn decided(w: &World, urls: &str, id: u64) -> serde_json::Value {
    poll("the proposal to be decided", WAIT, || {
        let v = w.cli_json(urls, &["gov", "show", &id.to_string()]);
        (v["proposal"]["status"] != "voting").then_some(v)
    })
}

#[test]
fn a_passed_proposal_adds_a_validator_that_catches_up_and_another_removes_one() {
    let w = World::new();
    // The staker (the requester key) holds 5,000 from genesis, beside the validators' 3 × 1,000
    // bonded: staking 3,000 of it, its vote alone is over the quorum of 33.4% of all bonded
    // stake (3,000 of 6,100 with the newcomer's 100).
    let staker = w.cli(&["keys", "--json"]).ok().json()["account"]
        .as_str()
        .unwrap()
        .to_string();
    let listens = fresh_listens(3);
    let addresses = listens.iter().map(|l| format!("http://{l}")).collect();
    let cluster = Cluster::start_with(&w, listens, addresses, Vec::new());
    let genesis = std::fs::read_to_string(&cluster.genesis)
        .unwrap()
        .replace("unbonding_delay = \"1m\"", "unbonding_delay = \"2s\"");
    assert!(genesis.contains("\"2s\""));
    std::fs::write(
        &cluster.genesis,
        format!("{genesis}[allocations]\n\"{staker}\" = \"5000\"\n"),
    )
    .unwrap();
    let mut cluster = cluster.spawn_all(&w);
    let urls = cluster.urls();
    let leader = cluster.leader();
    let leader_http = w.http(&cluster.validators[leader].as_ref().unwrap().url);
    let gov = w.cli_json(&urls, &["gov", "list"]);
    assert_eq!(gov["params"]["voting_period_ms"], 2_000, "{gov}");
    w.cli_json(&urls, &["wallet", "stake", "3000"]);

    // The newcomer: a key not in the genesis, started with --join on its own address, and the
    // minimum stake bonded from tokens the staker sends it.
    let dir = w.dir("validator");
    let account = w
        .cli(&[
            "keys",
            "--validator",
            "--data-dir",
            dir.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json()["account"]
        .as_str()
        .unwrap()
        .to_string();
    let listen = fresh_listens(1).remove(0);
    let address = format!("http://{listen}");
    let newcomer = w.coordinator_restart_on(
        &dir,
        &listen,
        &["--genesis", cluster.genesis.to_str().unwrap(), "--join"],
    );
    assert_eq!(newcomer.http.status().role, "learner");
    w.cli_json(&urls, &["wallet", "transfer", &account, "200"]);
    let key = dir.join("validator.key");
    w.cli_json(
        &urls,
        &["wallet", "stake", "100", "--key", key.to_str().unwrap()],
    );

    // Refused: a validator already in the set; nothing is proposed.
    let member = cluster.account(1).to_hex();
    let again = w
        .cli(&[
            "gov",
            "propose",
            "--title",
            "twice",
            "--add-validator",
            &format!("{member}=http://127.0.0.1:9"),
            "--coordinator",
            &urls,
        ])
        .fails();
    assert!(
        again.stderr.contains("422 invalid_proposal")
            && again.stderr.contains("already a validator"),
        "{}",
        again.stderr
    );
    assert_eq!(
        w.cli_json(&urls, &["gov", "list"])["proposals"],
        serde_json::json!([])
    );

    // The staker proposes the newcomer and votes for it: passed when the vote ends.
    let add = format!("{account}={address}");
    let id = propose_and_vote(&w, &urls, "Add a validator", &["--add-validator", &add]);
    let view = decided(&w, &urls, id);
    assert_eq!(view["proposal"]["status"], "passed", "{view}");
    assert_eq!(
        (&view["tally"]["yes"], &view["tally"]["total"]),
        (
            &serde_json::json!("3000000000000"),
            &serde_json::json!("6100000000000")
        ),
        "{view}"
    );

    // The leader adds it to the consensus and it catches up from the log: same state, and it
    // takes part (a follower, voting).
    poll("the newcomer to catch up and vote", WAIT, || {
        let mine = newcomer.http.status();
        let theirs = leader_http.status();
        (mine.role == "follower"
            && mine.state_hash == theirs.state_hash
            && mine.log_length == theirs.log_length)
            .then_some(())
    });
    let set = w.block_on(leader_http.client.chain_validators()).unwrap();
    assert_eq!(set.validators.len(), 4);
    assert!(set.validators.iter().any(|v| v.account.to_hex() == account));

    // One of the original three is proposed out; the membership drops it, it is stopped, and
    // the rest go on, the newcomer among them.
    let out = (0..3).find(|i| *i != leader).unwrap();
    let out_account = cluster.account(out).to_hex();
    let id = propose_and_vote(
        &w,
        &urls,
        "Remove a validator",
        &["--remove-validator", &out_account],
    );
    let view = decided(&w, &urls, id);
    assert_eq!(view["proposal"]["status"], "passed", "{view}");
    poll(
        "the membership to drop the validator voted out",
        WAIT,
        || {
            let set = w.block_on(newcomer.http.client.chain_validators()).ok()?;
            (set.validators.len() == 3
                && set
                    .validators
                    .iter()
                    .all(|v| v.account.to_hex() != out_account))
            .then_some(())
        },
    );
    // The leader takes it out of the consensus membership and stops replicating to it (it
    // stands for election in vain). Then the other original follower stops too: the leader and
    // the newcomer, two of the three voters left, still commit — which they could not were the
    // one voted out still a voter, or the newcomer not one.
    poll(
        "the one voted out to hear no more from the leader",
        WAIT,
        || {
            let role = cluster.validators[out].as_ref().unwrap().http.status().role;
            (role != "follower" && role != "leader").then_some(())
        },
    );
    let other = (0..3).find(|i| *i != leader && *i != out).unwrap();
    for i in [out, other] {
        cluster.validators[i].take().unwrap().proc.kill();
    }
    let friend = crate::support::account(0x42).to_hex();
    w.cli_json(&urls, &["wallet", "transfer", &friend, "1"]);
    // The whole chain verifies from genesis, certificates checked against the set as it
    // changed, and the newcomer is at the same state, signing.
    verified_and_signed_by(&w, &leader_http, &newcomer, &account);
}
