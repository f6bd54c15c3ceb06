//! Real interpreters (CPython 3.11 and QuickJS, WASI builds fetched from PyPI by
//! `examples/runtimes/fetch.sh`, pinned by hash) in the sandbox: their standard library mounted
//! as an unpacked tree, their runs bit-identical whatever the host's directories, file times and
//! environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use sandbox::{Outcome, RunReport, Sandbox, SandboxConfig, TaskRun, VIRTUAL_UNIX_TIME_SECS, tree};

/// `examples/runtimes/`, with the runtimes fetched (once per test process).
pub(crate) fn runtimes() -> &'static Path {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/runtimes");
        let status = Command::new("bash")
            .arg(root.join("fetch.sh"))
            .status()
            .expect("running examples/runtimes/fetch.sh");
        assert!(status.success(), "examples/runtimes/fetch.sh failed");
        root
    })
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).unwrap()
}

/// Python's standard library as a provider holds it: packed into a tree blob and unpacked in
/// `into` (a fresh directory each time: another host path).
fn python_lib(into: &Path) -> PathBuf {
    let blob = tree::pack(&runtimes().join("python/usr/local")).unwrap();
    let dest = into.join("tree");
    tree::unpack(&blob, &dest).unwrap();
    dest
}

fn python_run(lib: &Path, script: &str, inputs: Vec<(String, PathBuf)>) -> TaskRun {
    TaskRun {
        args: vec![script.into()],
        inputs,
        mounts: vec![("/usr/local".into(), lib.to_path_buf())],
        fuel_limit: 200_000_000_000,
        memory_limit_bytes: 512 << 20,
        wall_limit: Duration::from_secs(120),
        ..TaskRun::default()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn python_runs_a_script_with_its_standard_library_mounted() {
    let dir = tempfile::tempdir().unwrap();
    let lib = python_lib(dir.path());
    let script = write(
        dir.path(),
        "hello.py",
        "import sys, json, hashlib\nprint(json.dumps({'v': sys.version_info[:2], 'h': hashlib.sha256(b'x').hexdigest()[:8]}))\n",
    );
    let wasm = std::fs::read(runtimes().join("python-3.11.3.wasm")).unwrap();
    let report = sandbox()
        .run_bytes(
            &wasm,
            &python_run(&lib, "hello.py", vec![("hello.py".into(), script)]),
        )
        .unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Exited(0),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&report.output),
        "{\"v\": [3, 11], \"h\": \"2d711642\"}\n"
    );
}

/// What the determinism cases' programs print: everything a program can observe of its host.
const OBSERVE_PY: &str = r#"
import io, json, os, random, sys, tempfile, time, zipfile, hashlib
out = {}
out["argv"] = sys.argv
out["cwd"] = os.getcwd()
out["environ"] = dict(os.environ)
out["executable"] = [sys.executable, sys.prefix, sys.platform]
out["time"] = [time.time(), time.time_ns(), list(time.localtime()), list(time.gmtime())]
out["clocks"] = [time.monotonic_ns(), time.perf_counter_ns(), time.process_time_ns()]
out["random"] = [random.random(), os.urandom(8).hex(), hash("gridmint")]
out["ids"] = [os.getpid(), os.cpu_count()]
def stat(path):
    s = os.stat(path)
    return [s.st_mode, s.st_ino, s.st_dev, s.st_nlink, s.st_size, s.st_atime_ns, s.st_mtime_ns, s.st_ctime_ns]
out["input"] = stat("data.txt")
out["root"] = os.listdir("/")
walk = []
for root, dirs, files in os.walk("/usr/local"):
    for name in dirs + files:
        walk.append([root, name] + stat(os.path.join(root, name)))
out["walk"] = walk
# The issue's case: an input archived with zipfile (which stores the file's mtime).
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.write("data.txt")
out["zip"] = hashlib.sha256(buf.getvalue()).hexdigest()
# The scratch directory: files, a temporary directory (named from the seeded random), stats.
with open("/tmp/scratch.bin", "wb") as f:
    f.write(b"x" * 1000)
with tempfile.TemporaryDirectory() as d:
    with open(os.path.join(d, "a"), "w") as f:
        f.write("a")
    out["tmp"] = [d, os.listdir(d), stat(d), stat(os.path.join(d, "a"))]
out["scratch"] = [sorted(os.listdir("/tmp")), stat("/tmp/scratch.bin")]
try:
    open("/usr/local/lib/new.txt", "w")
    out["mount_writable"] = True
except OSError as e:
    out["mount_writable"] = e.errno
print(json.dumps(out, sort_keys=True))
"#;

const OBSERVE_JS: &str = r#"
import * as std from 'std';
print(JSON.stringify({
  args: args,
  env: [std.getenv('HOME'), std.getenv('TZ'), std.getenv('LANG')],
  now: Date.now(),
  date: new Date().toString(),
  random: [Math.random(), Math.random()],
  input: std.loadFile('data.txt').length,
}));
"#;

/// Runs case `case` ("python" or "quickjs") with everything under `dir`, the input file's
/// modification time set to `mtime`.
fn run_case(case: &str, dir: &Path, mtime: SystemTime) -> RunReport {
    let data = write(dir, "data.txt", "the same input on every host\n");
    std::fs::File::options()
        .write(true)
        .open(&data)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let sandbox = sandbox();
    match case {
        "python" => {
            let lib = python_lib(dir);
            let script = write(dir, "observe.py", OBSERVE_PY);
            let run = TaskRun {
                env: vec![("LANG".into(), "C.UTF-8".into())],
                scratch: Some(("/tmp".into(), 1 << 20)),
                ..python_run(
                    &lib,
                    "observe.py",
                    vec![("observe.py".into(), script), ("data.txt".into(), data)],
                )
            };
            let wasm = std::fs::read(runtimes().join("python-3.11.3.wasm")).unwrap();
            sandbox.run_bytes(&wasm, &run).unwrap()
        }
        "quickjs" => {
            let script = write(dir, "observe.js", OBSERVE_JS);
            let run = TaskRun {
                args: vec!["observe.js".into(), "7".into()],
                inputs: vec![("observe.js".into(), script), ("data.txt".into(), data)],
                ..TaskRun::default()
            };
            let wasm = std::fs::read(runtimes().join("wasmedge_quickjs.wasm")).unwrap();
            sandbox.run_bytes(&wasm, &run).unwrap()
        }
        other => panic!("no case {other}"),
    }
}

/// Set by [`interpreters_agree_across_processes_directories_times_and_environments`] for the
/// child process it starts: the case to run.
const CHILD_CASE: &str = "GRIDMINT_INTERPRETER_CASE";

/// The other half of the determinism test, in a child process (another host environment, temp
/// directory and time): runs the case and prints its outcome, output hash and fuel.
#[test]
#[ignore = "run in a child process by the interpreter determinism test"]
fn interpreter_case_in_a_child_process() {
    let case = std::env::var(CHILD_CASE).expect("the case to run");
    let dir = tempfile::tempdir().unwrap();
    let report = run_case(&case, dir.path(), SystemTime::now());
    println!(
        "RESULT {:?} {} {}",
        report.outcome,
        hex(&report.output_hash),
        report.fuel_used
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Issue 15's core promise for real programs: CPython and QuickJS, run here and in a child
/// process whose temp directory, environment variables (TZ, LANG, HOME, PYTHONHASHSEED, …) and
/// input file times differ, return bit-identical output and fuel; the output shows the frozen
/// clock, numbered inodes and sorted listings, never the host's.
#[test]
fn interpreters_agree_across_processes_directories_times_and_environments() {
    for case in ["python", "quickjs"] {
        let here = tempfile::tempdir().unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(978_307_200); // 2001-01-01
        let mine = run_case(case, here.path(), old);
        assert_eq!(
            mine.outcome,
            Outcome::Exited(0),
            "{case}: {}",
            String::from_utf8_lossy(&mine.stderr)
        );
        let text = String::from_utf8(mine.output.clone()).unwrap();
        let seen: serde_json::Value = serde_json::from_str(text.trim()).unwrap();

        let elsewhere = tempfile::tempdir().unwrap();
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "interpreters::interpreter_case_in_a_child_process",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_CASE, case)
            .env("TMPDIR", elsewhere.path())
            .env("TZ", "Asia/Kathmandu")
            .env("LANG", "de_DE.UTF-8")
            .env("HOME", "/nonexistent")
            .env("PYTHONHASHSEED", "12345")
            .env("PYTHONPATH", "/somewhere/else")
            .env("GRIDMINT_NOISE", "only the host has this")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&child.stdout);
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
            .unwrap_or_else(|| {
                panic!(
                    "{case}: the child printed no result: {stdout} {}",
                    String::from_utf8_lossy(&child.stderr)
                )
            });
        assert_eq!(
            line,
            format!(
                "{:?} {} {}",
                mine.outcome,
                hex(&mine.output_hash),
                mine.fuel_used
            ),
            "{case}: the two runs differ; this run printed {text}"
        );

        // What the programs saw is the sandbox's, not either host's.
        let frozen = VIRTUAL_UNIX_TIME_SECS;
        match case {
            "python" => {
                assert_eq!(seen["time"][0], serde_json::json!(frozen as f64), "{text}");
                assert_eq!(
                    seen["environ"],
                    serde_json::json!({"LANG": "C.UTF-8"}),
                    "{text}"
                );
                let input = &seen["input"];
                assert!(
                    input[1].as_u64().unwrap() < 100,
                    "inodes numbered by first sight: {text}"
                );
                assert_eq!(
                    input[6],
                    serde_json::json!(frozen as u128 * 1_000_000_000),
                    "{text}"
                );
                assert_ne!(
                    seen["mount_writable"], true,
                    "the mount is read-only: {text}"
                );
                assert_eq!(
                    seen["scratch"][0],
                    serde_json::json!(["scratch.bin"]),
                    "{text}"
                );
            }
            _ => {
                assert_eq!(seen["now"], serde_json::json!(frozen * 1000), "{text}");
                assert_eq!(seen["env"], serde_json::json!([null, null, null]), "{text}");
                assert_eq!(seen["input"], 29, "{text}");
            }
        }
    }
}

/// A scratch directory holds what a program writes there, within its quota: going over for a
/// moment is fine, ending over it fails the run, and a program that keeps writing is stopped
/// at the same call (the same fuel) on every run.
#[test]
fn the_scratch_quota_is_enforced_at_the_same_point_on_every_run() {
    let dir = tempfile::tempdir().unwrap();
    let lib = python_lib(dir.path());
    let wasm = std::fs::read(runtimes().join("python-3.11.3.wasm")).unwrap();
    let sandbox = sandbox();
    let script = write(
        dir.path(),
        "fill.py",
        r#"import os, sys
mode = sys.argv[1]
chunk = b"x" * 65536
with open("/tmp/big", "wb") as f:
    for i in range({"over": 24, "forever": 100000, "within": 8}.get(mode, 24)):
        f.write(chunk)
        f.flush()
if mode == "over":
    os.remove("/tmp/big")
print(mode, sorted(os.listdir("/tmp")))
"#,
    );
    let run = |mode: &str| {
        let task = TaskRun {
            args: vec!["fill.py".into(), mode.into()],
            scratch: Some(("/tmp".into(), 1 << 20)),
            ..python_run(&lib, "fill.py", vec![("fill.py".into(), script.clone())])
        };
        sandbox.run_bytes(&wasm, &task).unwrap()
    };
    let within = run("within");
    assert_eq!(
        within.outcome,
        Outcome::Exited(0),
        "{}",
        String::from_utf8_lossy(&within.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&within.output), "within ['big']\n");
    // 1.5 MiB for a moment, then removed.
    let over = run("over");
    assert_eq!(
        over.outcome,
        Outcome::Exited(0),
        "{}",
        String::from_utf8_lossy(&over.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&over.output), "over []\n");
    // 1.5 MiB left behind: the run fails.
    let kept = run("kept");
    assert!(
        matches!(&kept.outcome, Outcome::Trap(m) if m.contains("/tmp")),
        "{:?}",
        kept.outcome
    );
    // Writing on and on: stopped at twice the quota, at the same point each time.
    let first = run("forever");
    let second = run("forever");
    assert!(
        matches!(&first.outcome, Outcome::Trap(m) if m.contains("/tmp")),
        "{:?}",
        first.outcome
    );
    assert_eq!(
        (&first.outcome, first.output_hash, first.fuel_used),
        (&second.outcome, second.output_hash, second.fuel_used)
    );
}

/// Every file under `dir` with its size and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                out.push((entry.path(), meta.len(), meta.modified().unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A provider that restarts does not compile its runtimes again: compiled code is kept on disk
/// by content (wasmtime's code cache), and a new sandbox on the same directory loads it — it
/// writes nothing new — and runs it with the same result.
#[test]
fn compiled_code_is_kept_on_disk_and_reused_by_a_new_sandbox() {
    let cache = tempfile::tempdir().unwrap();
    let config = || SandboxConfig {
        code_cache: Some(cache.path().join("compiled")),
        ..SandboxConfig::default()
    };
    let wasm = std::fs::read(runtimes().join("wasmedge_quickjs.wasm")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = write(
        dir.path(),
        "sum.js",
        "let s = 0; for (let i = 0; i < 1000; i++) s += i; print(s);",
    );
    let run = TaskRun {
        args: vec!["sum.js".into()],
        inputs: vec![("sum.js".into(), script)],
        ..TaskRun::default()
    };
    let first = Sandbox::new(config()).unwrap();
    let before = first.run_bytes(&wasm, &run).unwrap();
    assert_eq!(String::from_utf8_lossy(&before.output), "499500\n");
    drop(first);
    // The cache writes in the background: wait until what it holds stops changing.
    let mut stored = listing(&cache.path().join("compiled"));
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let now = listing(&cache.path().join("compiled"));
        if now == stored && !now.is_empty() {
            break;
        }
        stored = now;
    }
    assert!(!stored.is_empty(), "nothing was kept on disk");

    let second = Sandbox::new(config()).unwrap();
    let after = second.run_bytes(&wasm, &run).unwrap();
    assert_eq!(
        (after.outcome, after.output_hash, after.fuel_used),
        (before.outcome, before.output_hash, before.fuel_used)
    );
    let compiled: Vec<_> = listing(&cache.path().join("compiled"))
        .into_iter()
        .filter(|(path, ..)| !path.to_string_lossy().ends_with(".stats"))
        .collect();
    let kept: Vec<_> = stored
        .into_iter()
        .filter(|(path, ..)| !path.to_string_lossy().ends_with(".stats"))
        .collect();
    assert_eq!(
        compiled, kept,
        "the second sandbox compiled the module again"
    );
}
