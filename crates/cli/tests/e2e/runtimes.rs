//! Interpreters as runtimes, through real processes (issue 15): the Python and JavaScript
//! example sweeps run on CPython and QuickJS for WASI (fetched from PyPI by
//! `examples/runtimes/fetch.sh`), the interpreter a content-addressed module, its standard
//! library a mounted tree, the script an input; providers on hosts whose environment differs
//! agree on every result.

use crate::support::*;
use engine::JobStatus;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// Fetches the runtimes into `examples/runtimes/` (once per test process).
fn runtimes() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let status = Command::new("bash")
            .arg(examples().join("runtimes/fetch.sh"))
            .status()
            .expect("running examples/runtimes/fetch.sh");
        assert!(status.success(), "examples/runtimes/fetch.sh failed");
    });
}

/// Three providers (what the network's default verification needs of new providers) whose
/// hosts differ in what a program could pick up from them.
fn unlike_providers(w: &World, c: &Coordinator) -> Vec<Provider> {
    let hosts: [&[(&str, &str)]; 3] = [
        &[("TZ", "UTC"), ("LANG", "C"), ("PYTHONHASHSEED", "0")],
        &[
            ("TZ", "Pacific/Chatham"),
            ("LANG", "tr_TR.UTF-8"),
            ("PYTHONHASHSEED", "4242"),
            ("PYTHONPATH", "/elsewhere"),
            ("HOME", "/nonexistent"),
        ],
        &[
            ("TZ", "America/St_Johns"),
            ("LC_ALL", "ja_JP.UTF-8"),
            ("TMPDIR", "/var/tmp"),
        ],
    ];
    hosts
        .iter()
        .map(|env| {
            let (dir, id) = w.provider_dir();
            let p = w.spawn_provider_env(&c.url, &dir, id, 2, &[], env);
            p.wait_active(&c.http);
            p
        })
        .collect()
}

/// `examples/NAME` with its paths made absolute, plus `extra`, written into the test's directory.
fn spec_with(w: &World, name: &str, extra: &str) -> PathBuf {
    let root = examples().display().to_string().replace('\\', "/");
    let mut text = std::fs::read_to_string(examples().join(name)).unwrap();
    for dir in ["runtimes/", "python/", "js/"] {
        text = text.replace(&format!("\"{dir}"), &format!("\"{root}/{dir}"));
    }
    w.write(name, text + extra)
}

/// How long a job that compiles a language runtime on every provider may take: 30 s alone
/// on a two-core machine (the 30 MB runtime's 100 tasks), past the default wait when other
/// tests run beside it.
const RUNTIME_WAIT: Duration = Duration::from_secs(180);

/// Two runs of every task, on two unlike providers, must agree exactly.
const TWO_OF_TWO: &str = "\n[redundancy]\npolicy = \"fixed\"\nquorum = 2\nmax_results = 2\n";

fn run_example(name: &str, expected: &str, tasks: u64) -> (World, Coordinator, Vec<Provider>) {
    runtimes();
    let w = World::new();
    let c = w.coordinator(&[]);
    let providers = unlike_providers(&w, &c);

    // As a user runs it: the network's default verification.
    let job = w.submit(&c.url, &examples().join(name));
    let view = c.http.wait_job_for(job, RUNTIME_WAIT);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    let want = std::fs::read_to_string(examples().join(expected)).unwrap();
    let got = String::from_utf8(w.results(&c.url, job)).unwrap();
    assert_eq!(got, want, "{name}: the output differs from {expected}");

    // Every task run on both hosts: results that differed would fail the job.
    let job = w.submit(&c.url, &spec_with(&w, name, TWO_OF_TWO));
    let view = c.http.wait_job_for(job, RUNTIME_WAIT);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    assert_eq!(view.executions, 2 * tasks, "{view:?}");
    let got = String::from_utf8(w.results(&c.url, job)).unwrap();
    assert_eq!(got, want, "{name} (2 of 2)");
    (w, c, providers)
}

/// `job submit SPEC --private --wait --out FILE` (rules 13), returning the job and its output.
fn run_private(w: &World, c: &Coordinator, spec: &Path) -> (engine::JobId, String) {
    let out = w.dir("private").join("out.txt");
    let ran = w
        .cli(&[
            "job",
            "submit",
            spec.to_str().unwrap(),
            "--coordinator",
            &c.url,
            "--private",
            "--wait",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ])
        .ok();
    let job = ran.json()["job"].as_u64().expect("a job id");
    (job, std::fs::read_to_string(out).unwrap())
}

#[test]
fn the_python_sweep_runs_on_cpython_with_its_library_mounted_and_hosts_agree() {
    let (w, c, _providers) = run_example("python-sweep.toml", "python/expected.txt", 8);
    // Private (rules 13), both hosts agreeing on every sealed output: the script is sealed,
    // the standard library (`private = false` in the spec) stays in the clear, so each provider
    // keeps using the one copy it unpacked for the jobs before instead of a copy per key.
    let want = std::fs::read_to_string(examples().join("python/expected.txt")).unwrap();
    let (job, got) = run_private(&w, &c, &spec_with(&w, "python-sweep.toml", TWO_OF_TWO));
    assert_eq!(got, want, "python-sweep.toml (private, 2 of 2)");
    let view = c.http.job(job);
    assert_eq!(view.executions, 16, "{view:?}");
    assert!(view.private.is_some());
    let trees: Vec<String> = std::fs::read_dir(w.root())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("provider-"))
        .flat_map(|p| {
            std::fs::read_dir(p.path().join("trees"))
                .into_iter()
                .flatten()
        })
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    assert!(!trees.is_empty());
    assert!(
        trees.iter().all(|t| !t.contains('-')),
        "a provider unpacked the library again for the private job: {trees:?}"
    );
}

#[test]
fn the_javascript_sweep_runs_on_quickjs_and_hosts_agree() {
    run_example("js-sweep.toml", "js/expected.txt", 6);
}

/// `wasm` with a custom section appended that brings it to `size` bytes (a custom section is
/// what debug information and producers' notes travel in: every runtime skips it).
fn padded_to(mut wasm: Vec<u8>, size: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"gridmint.padding";
    // Section header (id, 5-byte size) + name length + name.
    let payload = size - wasm.len() - 1 - 5 - 1 - name.len();
    wasm.push(0);
    let body = 1 + name.len() + payload;
    // A fixed 5-byte LEB128 so that the total comes out exact.
    for i in 0..5 {
        let byte = ((body >> (7 * i)) & 0x7f) as u8;
        wasm.push(if i < 4 { byte | 0x80 } else { byte });
    }
    leb(name.len(), &mut wasm);
    wasm.extend_from_slice(name);
    wasm.resize(size, 0);
    wasm
}

/// Issue 15: a 30 MB runtime is sent to a provider once, not per task: across 100 tasks each
/// provider downloads it once and compiles it once (its slots wait for the one download).
#[test]
fn a_30_mb_runtime_is_fetched_and_compiled_once_per_provider_across_100_tasks() {
    runtimes();
    let w = World::new();
    let c = w.coordinator(&[]);
    let providers: Vec<Provider> = (0..2).map(|_| w.provider(&c, 2)).collect();
    let python = std::fs::read(examples().join("runtimes/python-3.11.3.wasm")).unwrap();
    let module = padded_to(python, 30 << 20);
    let hash = engine::Hash::of(&module).to_hex();
    w.write("python-30mb.wasm", &module);
    let root = examples().display().to_string().replace('\\', "/");
    let spec = w.write(
        "many.toml",
        format!(
            r#"module = "python-30mb.wasm"
fuel = 5_000_000_000
memory = "128MiB"
timeout = "120s"
deadline = "30m"

[[mount]]
path = "/usr/local"
dir = "{root}/runtimes/python/usr/local"

[tasks]
range = [0, 100]
args = ["-c", "print({{i}} * {{i}})"]

[redundancy]
policy = "fixed"
quorum = 1
"#
        ),
    );
    let job = w.submit(&c.url, &spec);
    let view = c.http.wait_job_for(job, RUNTIME_WAIT);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    let want: String = (0..100).map(|i| format!("{}\n", i * i)).collect();
    assert_eq!(String::from_utf8(w.results(&c.url, job)).unwrap(), want);

    let mut ran = 0;
    for p in &providers {
        let log = std::fs::read_to_string(&p.proc.log).unwrap();
        let lines = |what: &str| {
            log.lines()
                .filter(|l| l.contains(what) && l.contains(&hash))
                .count()
        };
        let tasks = view.tasks_per_provider.get(&p.id).copied().unwrap_or(0);
        if tasks > 0 {
            ran += 1;
            assert_eq!(lines("downloaded a blob"), 1, "{tasks} tasks: {log}");
            assert_eq!(lines("prepared a module"), 1, "{tasks} tasks: {log}");
        }
    }
    assert!(ran >= 1);
}

/// A module built with WebAssembly exception handling (what C++ toolchains and MicroPython's
/// build emit) is taken at submission and runs on every provider: each task throws from deep in
/// a recursion, catches it, prints where; two runs of every task agree. One that throws and
/// never catches fails the job with a verified trap.
#[test]
fn a_module_using_exceptions_runs_as_a_job_on_every_provider() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let _providers: Vec<Provider> = (0..2).map(|_| w.provider(&c, 2)).collect();
    let module = |body: &str| {
        wat::parse_str(format!(
            r#"(module
                 (import "wasi_snapshot_preview1" "fd_write"
                   (func $fd_write (param i32 i32 i32 i32) (result i32)))
                 (memory (export "memory") 1)
                 (data (i32.const 64) "caught at depth 0\n")
                 (tag $found (param i32))
                 (func $deep (param i32)
                   (if (i32.eqz (local.get 0))
                     (then (throw $found (i32.const 7))))
                   (call $deep (i32.sub (local.get 0) (i32.const 1))))
                 {body})"#
        ))
        .unwrap()
    };
    let catches = module(
        r#"(func (export "_start") (local $depth i32)
             (block $handler (result i32)
               (try_table (catch $found $handler) (call $deep (i32.const 1000)))
               (i32.const 0))
             (local.set $depth)
             ;; "caught at depth N": N is the thrown value, one digit.
             (i32.store8 (i32.const 80) (i32.add (i32.const 48) (local.get $depth)))
             (i32.store (i32.const 0) (i32.const 64))
             (i32.store (i32.const 4) (i32.const 18))
             (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))"#,
    );
    let uncaught = module(r#"(func (export "_start") (call $deep (i32.const 10)))"#);
    w.write("catches.wasm", &catches);
    w.write("uncaught.wasm", &uncaught);
    let spec = |module: &str| {
        format!(
            "module = \"{module}\"\nfuel = 10_000_000\nmemory = \"16MiB\"\n\
             [tasks]\nrange = [0, 4]\n{TWO_OF_TWO}"
        )
    };
    let job = w.submit(&c.url, &w.write("catches.toml", spec("catches.wasm")));
    let view = c.http.wait_job(job);
    assert_eq!(view.status, JobStatus::Completed, "{view:?}");
    assert_eq!(view.executions, 8, "{view:?}");
    assert_eq!(
        String::from_utf8(w.results(&c.url, job)).unwrap(),
        "caught at depth 7\n".repeat(4)
    );

    let job = w.submit(&c.url, &w.write("uncaught.toml", spec("uncaught.wasm")));
    let view = c.http.wait_job(job);
    match &view.status {
        JobStatus::Failed { reason } => assert!(reason.contains("trap"), "{reason}"),
        other => panic!("an uncaught exception ended {other:?}"),
    }
}

/// Job files are an input surface: a tree that is no tree, one never uploaded, a bad path, a
/// claim that leaves the tree out — each is refused with a typed error and changes nothing;
/// a directory holding a symlink, or mounts inside each other, are refused by the CLI before
/// anything is uploaded. The same job with a packed tree is taken.
#[test]
fn bad_mounts_and_scratch_are_refused_and_change_nothing() {
    use api::Identity;
    use engine::{Action, JobFiles, JobOptions, Mount, Scratch};
    let w = World::new();
    let c = w.coordinator(&[]);

    // The CLI: a symlink in a mounted directory, overlapping paths.
    let dir = w.dir("lib");
    std::fs::write(dir.join("a.txt"), "a").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink("/etc/passwd", dir.join("passwd")).unwrap();
    let spec = |mounts: &str| {
        w.write(
            "mounts.toml",
            format!(
                "module = {}\n{mounts}\n[tasks]\nrange = [0, 1]\n",
                toml_path(&guest("noop.wasm"))
            ),
        )
    };
    let submit = |path: PathBuf| {
        w.cli(&[
            "job",
            "submit",
            path.to_str().unwrap(),
            "--coordinator",
            &c.url,
        ])
        .fails()
        .stderr
    };
    let lib = toml_path(&dir);
    #[cfg(unix)]
    {
        let err = submit(spec(&format!("[[mount]]\npath = \"/lib\"\ndir = {lib}\n")));
        assert!(
            err.contains("passwd") && err.contains("symbolic link"),
            "{err}"
        );
    }
    std::fs::remove_file(dir.join("passwd")).ok();
    let err = submit(spec(&format!(
        "[[mount]]\npath = \"/usr\"\ndir = {lib}\n[[mount]]\npath = \"/usr/lib\"\ndir = {lib}\n"
    )));
    assert!(err.contains("overlap"), "{err}");
    let blobs_before = c.http.status();

    // The API.
    let me = Identity::generate();
    let client = &c.http.client;
    w.block_on(client.action(&me, Action::Faucet)).unwrap();
    let noop = std::fs::read(guest("noop.wasm")).unwrap();
    let module = w
        .block_on(client.put_blob(&me, bytes::Bytes::from(noop.clone())))
        .unwrap();
    let garbage = b"certainly not a tar archive".to_vec();
    let garbage_hash = w
        .block_on(client.put_blob(&me, bytes::Bytes::from(garbage.clone())))
        .unwrap();
    let tree = sandbox::tree::pack(&dir).unwrap();
    let tree_hash = engine::Hash::of(&tree);
    let spec = crate::e2e::load::gpu_only(module, vec![engine::TaskSpec::default()]);
    let network = w.block_on(client.network()).unwrap();
    let submission = |files: JobFiles, blobs: &[&[u8]]| {
        let input_bytes = api::weigh(&spec, &files, blobs).unwrap_or(0);
        api::job_submission(
            network.storage.as_ref(),
            spec.clone(),
            input_bytes,
            None,
            JobOptions::default(),
            files,
            None,
        )
    };
    let mount = |path: &str, tree: engine::Hash| JobFiles {
        mounts: vec![Mount {
            path: path.into(),
            tree,
        }],
        scratch: None,
    };
    let before = c.http.status();
    let refused = |action: Action, status: u16, says: &str| {
        let e = w.block_on(client.action(&me, action)).unwrap_err();
        assert_eq!(e.status(), Some(status), "{e}");
        assert!(e.to_string().contains(says), "{says}: {e}");
    };
    refused(
        submission(mount("/data", garbage_hash), &[&noop, &garbage]),
        422,
        "is not a directory tree",
    );
    refused(
        submission(mount("/data", tree_hash), &[&noop, &tree]),
        404,
        "has not been uploaded",
    );
    refused(
        submission(mount("/data/../etc", garbage_hash), &[&noop, &garbage]),
        422,
        "invalid component",
    );
    let no_room = JobFiles {
        mounts: Vec::new(),
        scratch: Some(Scratch {
            path: "/tmp".into(),
            bytes: 0,
        }),
    };
    refused(submission(no_room, &[&noop]), 422, "scratch size");
    w.block_on(client.put_blob(&me, bytes::Bytes::from(tree.clone())))
        .unwrap();
    assert!(network.storage.is_some(), "a dev network prices storage");
    {
        // A claim that weighs the spec's blobs alone, leaving the tree out.
        refused(
            submission(mount("/data", tree_hash), &[&noop, &[][..]]),
            422,
            "storage_claim",
        );
    }
    let after = c.http.status();
    assert_eq!(
        (after.log_length, after.state_hash),
        (before.log_length, before.state_hash),
        "a refusal changed the state"
    );
    assert_eq!(
        before.log_length,
        blobs_before.log_length + 1,
        "beside the faucet, the CLI's refusals reached the log"
    );
    // Well formed, uploaded and claimed: taken.
    w.block_on(client.action(&me, submission(mount("/data", tree_hash), &[&noop, &tree])))
        .unwrap();
}
