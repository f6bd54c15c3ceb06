//! Reserved capacity (rules 26) through real processes: on a network with a 5% fee, a requester
//! reserves two slots in region `eu` for three periods of 2 s with `gridmint reserve create`; a
//! provider in `us` may not accept (422, nothing changes), one in `eu` accepts the slot it has
//! room for with `reserve accept`; a job priced `max_price = 0` runs only there, covered by the
//! lease (its escrow pays nothing); the provider is paid every period that ended, the price less
//! the fee exactly, and the lease renewed from the requester's balance; the owner cancels (a
//! stranger may not: 403), the lease runs out its period and the reservation ends, the slot
//! nobody took refunded; the chain replays offline.

use crate::support::*;
use engine::{AccountId, tokens};
use std::time::{Duration, Instant};

/// `gridmint reserve ARGS --coordinator URL --json`, parsed.
fn reserve(w: &World, url: &str, args: &[&str]) -> serde_json::Value {
    w.cli_json(url, &[&["reserve"], args].concat())
}

fn balance(c: &Coordinator, account: AccountId) -> u128 {
    c.http
        .block_on(c.http.client.account(account))
        .unwrap()
        .balance
}

/// The first event named `name` of an action's response.
fn event<'a>(resp: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    resp["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {resp}"))
}

#[test]
fn a_reservation_runs_its_owners_work_pays_its_provider_per_period_and_ends() {
    let w = World::new();
    let treasury = AccountId([0x77; 32]);
    let genesis = w.money_genesis("reserve-e2e", treasury);
    let c = w.coordinator(&["--genesis", genesis.to_str().unwrap()]);
    let url = c.url.as_str();
    // A (one slot, in eu) meets the reservation's region; B (in us) does not.
    let (a_dir, a_id) = w.provider_dir();
    let a = w.spawn_provider(url, &a_dir, a_id, 1, &["--region", "eu"]);
    let (b_dir, b_id) = w.provider_dir();
    let b = w.spawn_provider(url, &b_dir, b_id, 1, &["--region", "us"]);
    a.wait_active(&c.http);
    b.wait_active(&c.http);
    let (a_dir, b_dir) = (a_dir.to_str().unwrap(), b_dir.to_str().unwrap());

    w.fund_requester(url);
    let mine = w.cli_json(url, &["wallet", "balance"]);
    let me: AccountId = mine["id"].as_str().unwrap().parse().unwrap();
    let (me_before, a_before, b_before, treasury_before) = (
        amount(&mine, "balance"),
        balance(&c, a_id),
        balance(&c, b_id),
        balance(&c, treasury),
    );
    let price = tokens(5);
    let fee = price * 500 / 10_000;

    // Two slots of eu for three periods of 2 s at 5 GRID a slot: both first periods prepaid.
    let created = reserve(
        &w,
        url,
        &[
            "create",
            "--slots",
            "2",
            "--period",
            "2s",
            "--periods",
            "3",
            "--price",
            "5",
            "--region",
            "eu",
        ],
    );
    let reserved = event(&created, "reserved");
    let id = reserved["reservation"].as_u64().unwrap();
    assert_eq!(reserved["held"], (2 * price).to_string());
    let ids = id.to_string();
    let reserving = w.cli_json(url, &["wallet", "balance"]);
    assert_eq!(
        reserving["in_reservations"],
        (2 * price).to_string(),
        "{reserving}"
    );

    // B is in the wrong region: 422 invalid_reservation, and nothing changed. (Offers stay open
    // for one period: B and A answer within it.)
    let before = w.block_on(c.http.client.reservation(id)).unwrap();
    let refused = w
        .cli(&[
            "reserve",
            "accept",
            &ids,
            "--data-dir",
            b_dir,
            "--coordinator",
            url,
        ])
        .fails();
    assert!(
        refused.stderr.contains("422 invalid_reservation") && refused.stderr.contains("region"),
        "{}",
        refused.stderr
    );
    // A takes the one slot it has room for (the default: every open slot that fits).
    let accepted = reserve(&w, url, &["accept", &ids, "--data-dir", a_dir]);
    let lease = event(&accepted, "reservation_accepted");
    assert_eq!(
        (lease["slots"].as_u64(), lease["provider"].as_str()),
        (Some(1), Some(&*a_id.to_hex()))
    );
    assert_eq!(before.status, api::wire::ReservationStatus::Open);
    assert_eq!((before.open_slots, before.leases.len()), (2, 0));
    assert_eq!(balance(&c, b_id), b_before, "a refused acceptance cost B");
    let shown = reserve(&w, url, &["show", &ids]);
    assert_eq!(shown["status"], "active", "{shown}");
    assert_eq!(shown["leases"][0]["provider"], a_id.to_hex());
    assert_eq!(shown["region"], "eu");
    assert_eq!(amount(&shown, "price_per_slot"), price);
    let text = w
        .cli(&["reserve", "show", &ids, "--coordinator", url])
        .ok()
        .stdout;
    assert!(
        text.contains("active") && text.contains("lease") && text.contains("region eu"),
        "{text}"
    );

    // A job that pays nothing per fuel runs only in its owner's lease: on A, paid by the lease.
    let spec = w.write(
        "pi.toml",
        pi_spec(10_000, 2).replace("max_price = 1", "max_price = 0"),
    );
    let submitted = w
        .cli(&[
            "job",
            "submit",
            spec.to_str().unwrap(),
            "--coordinator",
            url,
            "--json",
        ])
        .ok()
        .json();
    let job = submitted["job"].as_u64().unwrap();
    let view = c.http.wait_completed(job);
    assert_eq!((view.escrow.locked, view.escrow.paid), (0, 0), "{view:?}");
    assert_eq!(view.tasks_per_provider.get(&a_id), Some(&2), "{view:?}");
    assert_eq!(w.results(url, job), pi_output(10_000, 2).into_bytes());
    let covered = w.block_on(c.http.client.reservation(id)).unwrap();
    assert_eq!(covered.tasks_covered, 2, "{covered:?}");

    // Only the owner cancels: B's key gets 403 not_owner; unknown reservations are 404.
    let stranger = w
        .cli(&[
            "reserve",
            "cancel",
            &ids,
            "--data-dir",
            b_dir,
            "--coordinator",
            url,
        ])
        .fails();
    assert!(
        stranger.stderr.contains("403 not_owner"),
        "{}",
        stranger.stderr
    );
    let unknown = w
        .cli(&["reserve", "show", "999", "--coordinator", url])
        .fails();
    assert!(
        unknown.stderr.contains("404 not_found"),
        "{}",
        unknown.stderr
    );
    // A's own list holds the lease.
    let leased = reserve(&w, url, &["list", "--leased", "--data-dir", a_dir]);
    assert_eq!(leased[0]["id"], id, "{leased}");

    // The first period ends: A is paid for it and the lease is renewed (its price taken from the
    // requester's balance). The owner then cancels.
    let started = Instant::now();
    loop {
        let v = w.block_on(c.http.client.reservation(id)).unwrap();
        if v.leases.first().is_some_and(|l| l.period >= 1) {
            assert_eq!(v.paid, price, "{v:?}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never renewed: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancelled = reserve(&w, url, &["cancel", &ids]);
    event(&cancelled, "reservation_cancelled");

    // The lease runs to the end of its period, is paid for it, and the reservation ends.
    let started = Instant::now();
    let ended = loop {
        let v = w.block_on(c.http.client.reservation(id)).unwrap();
        if v.status == api::wire::ReservationStatus::Ended {
            break v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ended: {v:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(ended.cancelled && ended.leases.is_empty() && ended.ended.is_some());
    assert_eq!((ended.open_slots, ended.open_held), (0, 0));
    // Every period A held the slot was paid, and only those: the first two (the third too if
    // the cancellation came after the second ended).
    let periods = ended.paid / price;
    assert!((2..=3).contains(&periods), "{ended:?}");
    assert_eq!(ended.paid, periods * price);
    // The slot nobody took was refunded in full.
    assert_eq!(ended.refunded, price, "{ended:?}");
    // A got each period's price less the 5% fee, exactly; the treasury got the fees; the
    // requester paid for those periods and nothing else (its job's escrow locked nothing).
    assert_eq!(balance(&c, a_id), a_before + periods * (price - fee));
    let a_view = w.block_on(c.http.client.provider(a_id)).unwrap();
    assert_eq!(a_view.stats.earned, periods * (price - fee));
    assert_eq!(balance(&c, treasury), treasury_before + periods * fee);
    assert_eq!(balance(&c, me), me_before - periods * price);
    assert_eq!(balance(&c, b_id), b_before);

    // The lists: mine holds it, ended; nobody leases it any more.
    let listed = reserve(&w, url, &["list", "--mine"]);
    assert_eq!(listed[0]["id"], id, "{listed}");
    assert_eq!(listed[0]["status"], "ended");
    let leased = w
        .block_on(c.http.client.reservations(None, Some(a_id)))
        .unwrap();
    assert!(leased.is_empty(), "{leased:?}");
    let text = w
        .cli(&["reserve", "list", "--coordinator", url])
        .ok()
        .stdout;
    assert!(
        text.contains(&format!("#{id}")) && text.contains("ended"),
        "{text}"
    );

    drop((a, b));
    w.verify_offline(c);
}
