//! The chain end to end: a coordinator seals its log into signed blocks while a job runs;
//! `gridmint chain verify` passes against it over HTTP and, after a graceful stop, offline on its
//! data dir without changing a file; one flipped byte in a stored entry or block makes it fail
//! naming that block. Sealing picks up where it left off after a `kill -9`.

use crate::support::{Coordinator, Ran, WAIT, World, error_body, pi_spec, poll};
use api::wire::ChainView;
use std::path::Path;

fn chain_view(c: &Coordinator) -> Option<ChainView> {
    c.http.block_on(c.http.client.chain()).ok()
}

/// Waits until every entry the coordinator has logged so far is in a block.
fn wait_sealed(c: &Coordinator) -> ChainView {
    let target = c.http.status().log_length;
    assert!(target > 0, "nothing was logged");
    poll("the log to be sealed into blocks", WAIT, || {
        chain_view(c).filter(|v| v.sealed_seq >= target && v.height > 0)
    })
}

fn verify_dir(w: &World, dir: &Path) -> Ran {
    w.cli(&[
        "chain",
        "verify",
        "--data-dir",
        dir.to_str().unwrap(),
        "--json",
    ])
}

fn u64_field(json: &serde_json::Value, key: &str) -> u64 {
    json.get(key)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no numeric {key:?} in {json}"))
}

/// Names and contents of every file in `dir` (not recursive), to show nothing changed.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// XORs one byte in the middle of a BLOB cell of the coordinator's SQLite file; returns the
/// original bytes.
fn flip(dir: &Path, table: &str, column: &str, key: &str, id: u64) -> Vec<u8> {
    let conn = rusqlite::Connection::open(dir.join("gridmint.sqlite")).unwrap();
    let query = format!("SELECT {column} FROM {table} WHERE {key} = ?1");
    let original: Vec<u8> = conn
        .query_row(&query, [id as i64], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{table} {id}: {e}"));
    let mut damaged = original.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x01;
    let update = format!("UPDATE {table} SET {column} = ?1 WHERE {key} = ?2");
    assert_eq!(
        conn.execute(&update, rusqlite::params![damaged, id as i64])
            .unwrap(),
        1
    );
    original
}

fn restore(dir: &Path, table: &str, column: &str, key: &str, id: u64, bytes: &[u8]) {
    let conn = rusqlite::Connection::open(dir.join("gridmint.sqlite")).unwrap();
    let update = format!("UPDATE {table} SET {column} = ?1 WHERE {key} = ?2");
    conn.execute(&update, rusqlite::params![bytes, id as i64])
        .unwrap();
}

/// `chain verify --data-dir` fails, naming block `height` on stderr and in its JSON.
fn assert_fails_at(w: &World, dir: &Path, height: u64) {
    let ran = verify_dir(w, dir).fails();
    assert!(
        ran.stderr.contains(&format!("block {height}: ")),
        "stderr does not name block {height}:\n{}",
        ran.stderr
    );
    let json = ran.json();
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(u64_field(&json, "height"), height, "{json}");
}

#[test]
fn chain_verifies_live_and_offline_and_a_flipped_byte_names_its_block() {
    let w = World::new();
    let c = w.coordinator(&["--block-interval", "100ms"]);
    let mut p = w.provider(&c, 1);
    let spec = w.write("pi.toml", pi_spec(10_000, 4));
    let job = w.submit(&c.url, &spec);
    c.http.wait_completed(job);

    // Against the running coordinator.
    let sealed = wait_sealed(&c);
    let json = w
        .cli(&["chain", "verify", "--coordinator", &c.url, "--json"])
        .ok()
        .json();
    assert_eq!(json["ok"], true, "{json}");
    assert!(u64_field(&json, "blocks") >= sealed.height, "{json}");
    assert!(u64_field(&json, "entries") >= sealed.sealed_seq, "{json}");
    assert_eq!(json["validator"], sealed.validator.to_hex(), "{json}");
    assert_eq!(json["genesis_hash"], sealed.genesis_hash.to_hex(), "{json}");
    let text = w
        .cli(&["chain", "verify", "--coordinator", &c.url])
        .ok()
        .stdout;
    assert!(text.starts_with("chain verified: "), "{text}");
    let shown = w
        .cli(&["chain", "show", "1", "--coordinator", &c.url, "--json"])
        .ok()
        .json();
    assert_eq!(shown["header"]["first_seq"], 1, "{shown}");

    // The raw pages: entries as stored, and bad paging parameters as a JSON 400.
    let entries = c
        .http
        .block_on(c.http.client.chain_entries(1, 2))
        .expect("GET /v1/chain/entries");
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(
        entries
            .iter()
            .all(|e| e.bytes().is_ok_and(|b| !b.is_empty()))
    );
    for query in ["blocks?from=x", "entries?limit=-1"] {
        let (status, body) = c.http.block_on(async {
            let resp = reqwest::get(format!("{}/v1/chain/{query}", c.url))
                .await
                .unwrap();
            (resp.status().as_u16(), resp.bytes().await.unwrap())
        });
        assert_eq!(status, 400, "{query}");
        assert_eq!(error_body(&body).error, "bad_request", "{query}");
    }

    // Stop everything gracefully: the coordinator seals its last entries on the way out.
    p.proc.terminate();
    assert!(p.proc.wait_exit(WAIT).success());
    let log_length = c.http.status().log_length;
    let mut c = c;
    let dir = c.data_dir.clone();
    c.proc.terminate();
    assert!(c.proc.wait_exit(WAIT).success(), "{}", c.proc.logs());

    let before = snapshot(&dir);
    let json = verify_dir(&w, &dir).ok().json();
    assert_eq!(snapshot(&dir), before, "chain verify changed the data dir");
    assert_eq!(json["ok"], true, "{json}");
    assert_eq!(
        u64_field(&json, "tail_entries"),
        0,
        "not sealed on shutdown: {json}"
    );
    assert_eq!(u64_field(&json, "entries"), log_length, "{json}");
    assert_eq!(json["state_hash"], json["sealed_state_hash"], "{json}");
    let blocks = u64_field(&json, "blocks");
    assert!(blocks >= 1, "{json}");

    let shown = w
        .cli(&[
            "chain",
            "show",
            "--data-dir",
            dir.to_str().unwrap(),
            "--json",
        ])
        .ok()
        .json();
    let shown = shown.as_array().expect("a JSON array of blocks").clone();
    assert_eq!(shown.len() as u64, blocks);
    let table = w
        .cli(&["chain", "show", "--data-dir", dir.to_str().unwrap()])
        .ok()
        .stdout;
    assert_eq!(table.lines().count() as u64, blocks + 1, "{table}");

    // One flipped byte in a stored entry: the block that covers it is named.
    let seq = log_length / 2 + 1;
    let covering = shown
        .iter()
        .find(|b| {
            u64_field(&b["header"], "first_seq") <= seq
                && seq <= u64_field(&b["header"], "last_seq")
        })
        .map(|b| u64_field(b, "height"))
        .expect("a block covers every entry");
    let original = flip(&dir, "log", "entry", "seq", seq);
    assert_fails_at(&w, &dir, covering);
    restore(&dir, "log", "entry", "seq", seq, &original);
    verify_dir(&w, &dir).ok();

    // One flipped byte in a stored block.
    let height = blocks.div_ceil(2);
    let original = flip(&dir, "blocks", "block", "height", height);
    assert_fails_at(&w, &dir, height);
    restore(&dir, "blocks", "block", "height", height, &original);
    verify_dir(&w, &dir).ok();
}

#[test]
fn sealing_resumes_after_the_coordinator_is_killed() {
    let w = World::new();
    let flags = ["--block-interval", "100ms"];
    let c = w.coordinator(&flags);
    let mut p = w.provider(&c, 1);
    let spec = w.write("pi.toml", pi_spec(10_000, 2));
    c.http.wait_completed(w.submit(&c.url, &spec));
    let before = wait_sealed(&c);
    let (dir, port) = (c.data_dir.clone(), c.port);
    drop(c); // SIGKILL

    let c = w.coordinator_restart(&dir, port, &flags);
    let restarted = chain_view(&c).expect("GET /v1/chain");
    assert_eq!(
        restarted.validator, before.validator,
        "the validator key changed"
    );
    assert!(restarted.height >= before.height);
    c.http.wait_completed(w.submit(&c.url, &spec));
    let after = wait_sealed(&c);
    assert!(
        after.height > restarted.height,
        "nothing sealed after the restart"
    );

    p.proc.terminate();
    assert!(p.proc.wait_exit(WAIT).success());
    let log_length = c.http.status().log_length;
    let mut c = c;
    c.proc.terminate();
    assert!(c.proc.wait_exit(WAIT).success(), "{}", c.proc.logs());
    let json = verify_dir(&w, &dir).ok().json();
    assert_eq!(u64_field(&json, "entries"), log_length, "{json}");
    assert_eq!(u64_field(&json, "tail_entries"), 0, "{json}");
    assert!(u64_field(&json, "blocks") > before.height, "{json}");
    assert_eq!(json["validator"], before.validator.to_hex(), "{json}");
}
