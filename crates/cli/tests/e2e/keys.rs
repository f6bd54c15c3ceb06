//! `gridmint keys`: the requester key under `GRIDMINT_HOME` and provider keys under a data dir are
//! created once, then stable; `--json` carries the same account.

use crate::support::World;
use api::Identity;
use std::path::Path;

fn account(text: &str) -> String {
    let id = text.trim().to_string();
    assert_eq!(id.len(), 64, "not a 64-hex-char account id: {text:?}");
    assert!(
        id.bytes().all(|b| b.is_ascii_hexdigit()),
        "not a 64-hex-char account id: {text:?}"
    );
    id.to_ascii_lowercase()
}

fn key_id(path: &Path) -> String {
    assert!(path.exists(), "{} was not created", path.display());
    Identity::load_or_create(path)
        .expect("a readable key file")
        .id()
        .to_hex()
}

#[test]
fn keys_are_created_once_and_stable() {
    let w = World::new();
    let first = account(&w.cli(&["keys"]).ok().stdout);
    let again = account(&w.cli(&["keys"]).ok().stdout);
    assert_eq!(first, again, "the requester key changed between runs");
    let requester_key = w.home().join("requester.key");
    assert_eq!(key_id(&requester_key), first);

    let json = w.cli(&["keys", "--json"]).ok().json();
    assert_eq!(
        json["account"].as_str().map(account),
        Some(first.clone()),
        "{json}"
    );
    let path = json["path"].as_str().expect("\"path\" in keys --json");
    assert_eq!(
        std::fs::canonicalize(path).expect("the printed key path exists"),
        std::fs::canonicalize(&requester_key).unwrap()
    );

    let data_dir = w.dir("provider");
    let data_dir_s = data_dir.to_str().unwrap();
    let provider = account(&w.cli(&["keys", "--data-dir", data_dir_s]).ok().stdout);
    assert_ne!(provider, first, "the provider key is the requester key");
    assert_eq!(key_id(&data_dir.join("provider.key")), provider);
    let json = w
        .cli(&["keys", "--data-dir", data_dir_s, "--json"])
        .ok()
        .json();
    assert_eq!(
        json["account"].as_str().map(account),
        Some(provider.clone()),
        "{json}"
    );

    // Another home is another requester.
    let other_home = w.dir("other-home");
    let other = account(
        &w.cli_env(
            &["keys"],
            &[("GRIDMINT_HOME", other_home.to_str().unwrap())],
        )
        .ok()
        .stdout,
    );
    assert_ne!(other, first);
    assert_eq!(key_id(&other_home.join("requester.key")), other);
    // ... and the first one is untouched.
    assert_eq!(account(&w.cli(&["keys"]).ok().stdout), first);
}
