//! `gridmint demo` as a new user runs it: the whole network in one process, ending with each
//! provider's earnings, the fees and the refund, and a chain that verifies again afterwards from
//! the kept data dir.

use crate::support::*;

fn amount(v: &serde_json::Value) -> u128 {
    v.as_str()
        .unwrap_or_else(|| panic!("{v} is not an amount string"))
        .parse()
        .unwrap()
}

/// `gridmint demo` with its data in `data` and its picture in `png`, and `extra` arguments;
/// it must succeed.
fn demo(w: &World, data: &std::path::Path, png: &std::path::Path, extra: &[&str]) -> Ran {
    let mut args = vec![
        "demo",
        "--data-dir",
        data.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    w.cli(&args).ok()
}

#[test]
fn the_demo_pays_its_providers_and_its_chain_verifies_afterwards() {
    let w = World::new();
    let data = w.dir("demo");
    let png = w.dir("out").join("demo.png");
    let summary = demo(&w, &data, &png, &["--json"]).json();
    let pi = summary["pi"].as_f64().unwrap();
    assert!((pi - std::f64::consts::PI).abs() < 0.01, "pi = {pi}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // The GPU hash search (CI has Mesa's software Vulkan driver, which the demo's providers
    // offer): its numbers as `sha2` gives them (the example's inputs: 262,144 nonces).
    assert!(summary["gpu"].is_string(), "{}", summary["gpu"]);
    let search = &summary["gpu_hash_search"];
    assert_eq!(search["found"], 62, "{search}");
    assert_eq!(search["least_nonce"], 1099, "{search}");
    assert_eq!(search["least_first_word"], 27564, "{search}");
    assert_eq!(summary["jobs"].as_array().unwrap().len(), 3);
    // The providers count their CPU runs' energy (issue 19): every run, a positive estimate.
    let energy = &summary["energy"];
    assert!(energy["runs"].as_u64().unwrap() > 0, "{energy}");
    assert!(energy["kwh"].as_f64().unwrap() > 0.0, "{energy}");
    assert!(energy["grams_co2e"].as_f64().unwrap() > 0.0, "{energy}");

    let locked = amount(&summary["escrow_locked"]);
    let paid = amount(&summary["paid_to_providers"]);
    let fees = amount(&summary["fees"]);
    let refunded = amount(&summary["refunded"]);
    // Rules 19: kept to re-run lone results until they are final.
    let kept = amount(&summary["escrow_kept"]);
    assert!(paid > 0 && fees > 0 && refunded > 0);
    assert_eq!(
        paid + fees + refunded + kept,
        locked,
        "escrow fully accounted for"
    );
    // 5% of every payment, rounded down per task.
    let gross = paid + fees;
    assert!(
        fees <= gross / 20 && fees + 64 >= gross / 20,
        "fees {fees} of {gross}"
    );
    // And the fee per action (rules 8) for each provider's stake and registration and each of
    // the requester's two submissions, at least.
    let action_fees = amount(&summary["action_fees"]);
    assert!(
        action_fees >= 2 * engine::DEV_ACTION_FEE
            && action_fees.is_multiple_of(engine::DEV_ACTION_FEE),
        "fees per action {action_fees}"
    );
    let earned: u128 = summary["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let e = amount(&p["stats"]["earned"]);
            assert!(e > 0, "a provider earned nothing: {p}");
            e
        })
        .sum();
    assert_eq!(earned, paid);
    assert_eq!(summary["chain"]["ok"], serde_json::Value::Null);

    // The data is kept: the chain verifies again, offline, from the same --data-dir.
    let verified = w
        .cli(&[
            "chain",
            "verify",
            "--data-dir",
            data.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(verified["ok"], true);
    assert_eq!(verified["state_hash"], summary["chain"]["state_hash"]);
}

/// What a new user sees first: the human summary, and no warning that nobody can run a job (its
/// jobs are submitted once its providers are there).
#[test]
fn the_demos_own_words_carry_no_warning() {
    let w = World::new();
    let data = w.dir("demo");
    let png = w.dir("out").join("demo.png");
    let run = demo(&w, &data, &png, &[]);
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("chain verified"), "{said}");
    // (The requester's warnings about a job's outlook start its lines so.)
    assert!(!said.lines().any(|l| l.starts_with("warning:")), "{said}");
}
