//! Integration tests for `sandbox`: small WAT guests exercise every outcome, the
//! visibility rules, determinism, caching and concurrency; the C guests under
//! `guests/` are used too when they have been built.

mod interpreters;
mod nans;
mod paused;
mod workers;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sandbox::{
    HOSTCALL_FUEL, Outcome, OutputSource, Prepared, RunReport, Sandbox, SandboxConfig,
    SandboxError, TaskRun, VIRTUAL_UNIX_TIME_SECS,
};

/// Imports every WASI function the test guests use, a two-page memory and helpers:
/// `$write(fd, ptr, len) -> errno`, `$strlen(ptr)`, `$argv(i) -> ptr` (argv copied to
/// 0x200/0x400), `$open(path_ptr, path_len, oflags, rights) -> fd` (exits with the
/// errno on failure). Scratch: iovec at 0x100, out-params at 0x108..0x120, data from
/// 0x2000.
const PRELUDE: &str = r#"
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_filestat_get" (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
  (memory (export "memory") 2)
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0x100) (local.get $ptr))
    (i32.store (i32.const 0x104) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0x100) (i32.const 1) (i32.const 0x108)))
  (func $strlen (param $p i32) (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $n)))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n))
  (func $argv (param $i i32) (result i32)
    (drop (call $args_sizes_get (i32.const 0x110) (i32.const 0x114)))
    (drop (call $args_get (i32.const 0x200) (i32.const 0x400)))
    (i32.load (i32.add (i32.const 0x200) (i32.mul (local.get $i) (i32.const 4)))))
  (func $open (param $p i32) (param $len i32) (param $oflags i32) (param $rights i64) (result i32)
    (local $err i32)
    (local.set $err (call $path_open (i32.const 3) (i32.const 0) (local.get $p) (local.get $len)
      (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0) (i32.const 0x118)))
    (if (local.get $err) (then (call $proc_exit (local.get $err))))
    (i32.load (i32.const 0x118)))
  (func $copy_to_stdout (param $fd i32) (local $n i32)
    (loop $l
      (i32.store (i32.const 0x100) (i32.const 0x2000))
      (i32.store (i32.const 0x104) (i32.const 0x8000))
      (if (call $fd_read (local.get $fd) (i32.const 0x100) (i32.const 1) (i32.const 0x108))
        (then (call $proc_exit (i32.const 99))))
      (local.set $n (i32.load (i32.const 0x108)))
      (if (local.get $n) (then
        (drop (call $write (i32.const 1) (i32.const 0x2000) (local.get $n)))
        (br $l)))))
"#;

const RIGHT_FD_READ: i64 = 0x2;
const RIGHT_FD_WRITE: i64 = 0x40;
const OFLAGS_CREAT_TRUNC: i32 = 1 | 8;

/// A module made of [`PRELUDE`] plus `body` (which must define `_start`).
fn guest(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {body})")).expect("test WAT must parse")
}

fn hello() -> Vec<u8> {
    guest(
        r#"(data (i32.const 0x2000) "hello\n")
           (func (export "_start") (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 6))))"#,
    )
}

/// Prints argv, "|", environ, "|", stdin.
fn show() -> Vec<u8> {
    guest(
        r#"(data (i32.const 0x10) "|")
           (func (export "_start")
             (drop (call $args_sizes_get (i32.const 0x110) (i32.const 0x114)))
             (drop (call $args_get (i32.const 0x200) (i32.const 0x400)))
             (drop (call $write (i32.const 1) (i32.const 0x400) (i32.load (i32.const 0x114))))
             (drop (call $write (i32.const 1) (i32.const 0x10) (i32.const 1)))
             (drop (call $environ_sizes_get (i32.const 0x110) (i32.const 0x114)))
             (drop (call $environ_get (i32.const 0x200) (i32.const 0x400)))
             (drop (call $write (i32.const 1) (i32.const 0x400) (i32.load (i32.const 0x114))))
             (drop (call $write (i32.const 1) (i32.const 0x10) (i32.const 1)))
             (call $copy_to_stdout (i32.const 0)))"#,
    )
}

/// Opens argv[1] under the preopen for reading and copies it to stdout; exits with
/// the errno if the open fails.
fn cat() -> Vec<u8> {
    guest(&format!(
        r#"(func (export "_start") (local $p i32)
             (local.set $p (call $argv (i32.const 1)))
             (call $copy_to_stdout
               (call $open (local.get $p) (call $strlen (local.get $p)) (i32.const 0) (i64.const {RIGHT_FD_READ}))))"#
    ))
}

/// Creates (truncating) file argv[1] and writes argv[2] into it.
fn write_file() -> Vec<u8> {
    guest(&format!(
        r#"(func (export "_start") (local $p i32) (local $fd i32) (local $c i32)
             (local.set $p (call $argv (i32.const 1)))
             (local.set $fd (call $open (local.get $p) (call $strlen (local.get $p))
               (i32.const {OFLAGS_CREAT_TRUNC}) (i64.const {RIGHT_FD_WRITE})))
             (local.set $c (call $argv (i32.const 2)))
             (if (call $write (local.get $fd) (local.get $c) (call $strlen (local.get $c)))
               (then (call $proc_exit (i32.const 98)))))"#
    ))
}

/// 16 random bytes, the realtime and monotonic clocks, then a little arithmetic
/// (including a NaN-producing float op) — 40 bytes on stdout.
fn entropy() -> Vec<u8> {
    guest(
        r#"(func (export "_start") (local $i i32) (local $acc i64)
             (drop (call $random_get (i32.const 0x2000) (i32.const 16)))
             (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 0x2010)))
             (drop (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 0x2018)))
             (loop $l
               (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005))
                                        (i64.extend_i32_u (local.get $i))))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
             (i64.store (i32.const 0x2020) (local.get $acc))
             (f64.store (i32.const 0x2028) (f64.div (f64.const 0) (f64.const 0)))
             (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 48))))"#,
    )
}

fn spin() -> Vec<u8> {
    guest(r#"(func (export "_start") (loop $l (br $l)))"#)
}

/// Grows its memory a page at a time until a growth fails.
fn memory_bomb() -> Vec<u8> {
    guest(
        r#"(func (export "_start")
             (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))))"#,
    )
}

fn sandbox() -> Sandbox {
    Sandbox::new(SandboxConfig::default()).expect("sandbox")
}

fn task() -> TaskRun {
    TaskRun {
        fuel_limit: 50_000_000,
        memory_limit_bytes: 16 << 20,
        wall_limit: Duration::from_secs(30),
        ..TaskRun::default()
    }
}

fn run(sb: &Sandbox, wasm: &[u8], task: &TaskRun) -> RunReport {
    sb.run_bytes(wasm, task).expect("run")
}

/// The sandbox must still run a good module correctly after `report`.
fn assert_still_healthy(sb: &Sandbox) {
    let report = run(sb, &hello(), &task());
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"hello\n");
}

fn host_file(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn sandbox_and_prepared_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Sandbox>();
    check::<Prepared>();
    check::<RunReport>();
}

#[test]
fn normal_module_exits_zero_with_stdout() {
    let sb = sandbox();
    let report = run(&sb, &hello(), &task());
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"hello\n");
    assert_eq!(report.output_hash, *blake3::hash(b"hello\n").as_bytes());
    assert!(report.fuel_used > 0 && report.fuel_used < task().fuel_limit);
    assert!(report.stderr.is_empty());
}

#[test]
fn exit_code_propagates() {
    let sb = sandbox();
    let wasm = guest(r#"(func (export "_start") (call $proc_exit (i32.const 3)))"#);
    let report = run(&sb, &wasm, &task());
    assert_eq!(report.outcome, Outcome::Exited(3));
    assert!(report.fuel_used > 0);
}

#[test]
fn stderr_is_captured_but_not_hashed() {
    let sb = sandbox();
    let wasm = guest(
        r#"(data (i32.const 0x2000) "oops")
           (func (export "_start") (drop (call $write (i32.const 2) (i32.const 0x2000) (i32.const 4))))"#,
    );
    let report = run(&sb, &wasm, &task());
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.stderr, b"oops");
    assert!(report.output.is_empty());
    assert_eq!(report.output_hash, *blake3::hash(b"").as_bytes());
}

#[test]
fn args_env_and_stdin_are_exactly_what_the_task_declares() {
    let sb = sandbox();
    let task = TaskRun {
        args: vec!["a".into(), "bc".into()],
        env: vec![("K".into(), "v".into()), ("X".into(), "1=2".into())],
        stdin: b"from stdin".to_vec(),
        ..task()
    };
    let report = run(&sb, &show(), &task);
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(
        report.output,
        b"task\0a\0bc\0|K=v\0X=1=2\0|from stdin".to_vec(),
        "{:?}",
        String::from_utf8_lossy(&report.output)
    );

    // Nothing of the host leaks in when the task declares nothing.
    let report = run(&sb, &show(), &self::task());
    assert_eq!(report.output, b"task\0||".to_vec());
}

#[test]
fn declared_input_is_readable_and_nothing_else_is() {
    let sb = sandbox();
    let host = tempfile::tempdir().unwrap();
    let input = host_file(host.path(), "data.txt", b"input bytes");
    host_file(host.path(), "secret", b"do not read");
    let with_input = |path: &str| TaskRun {
        args: vec![path.into()],
        inputs: vec![("in.txt".into(), input.clone())],
        ..task()
    };
    let wasm = cat();

    let report = run(&sb, &wasm, &with_input("in.txt"));
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"input bytes");

    const ENOENT: i32 = 44;
    const ENOTCAPABLE: i32 = 76;
    const EPERM: i32 = 63;
    const EBADF: i32 = 8;
    // Host files outside the working directory are unreachable.
    let report = run(&sb, &wasm, &with_input("etc/passwd"));
    assert_eq!(report.outcome, Outcome::Exited(ENOENT));
    for escape in ["../secret", "../../../../etc/passwd", "/etc/passwd"] {
        let report = run(&sb, &wasm, &with_input(escape));
        assert!(
            matches!(report.outcome, Outcome::Exited(e) if e == ENOTCAPABLE || e == EPERM),
            "{escape}: {:?}",
            report.outcome
        );
        assert!(report.output.is_empty());
    }
    // Without inputs or a file output there is no preopened directory at all.
    let report = run(
        &sb,
        &wasm,
        &TaskRun {
            args: vec!["in.txt".into()],
            ..task()
        },
    );
    assert_eq!(report.outcome, Outcome::Exited(EBADF));
}

#[test]
fn output_file_is_captured_and_inputs_are_copies() {
    let sb = sandbox();
    let host = tempfile::tempdir().unwrap();
    let input = host_file(host.path(), "orig.txt", b"original");
    let task = TaskRun {
        args: vec!["in.txt".into(), "changed by guest".into()],
        inputs: vec![("in.txt".into(), input.clone())],
        output: OutputSource::File("in.txt".into()),
        ..task()
    };
    let report = run(&sb, &write_file(), &task);
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"changed by guest");
    assert_eq!(
        report.output_hash,
        *blake3::hash(b"changed by guest").as_bytes()
    );
    assert_eq!(std::fs::read(&input).unwrap(), b"original");

    let task = TaskRun {
        args: vec!["out.txt".into(), "result".into()],
        output: OutputSource::File("out.txt".into()),
        ..self::task()
    };
    let report = run(&sb, &write_file(), &task);
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output, b"result");
}

#[test]
fn missing_or_planted_output_file_is_a_trap() {
    let sb = sandbox();
    let task = TaskRun {
        output: OutputSource::File("out.txt".into()),
        ..task()
    };
    let report = run(&sb, &hello(), &task);
    assert_eq!(
        report.outcome,
        Outcome::Trap("declared output file missing".into())
    );
    assert!(report.output.is_empty());

    // A symlink to a host file must not be followed when reading the output back.
    let wasm = guest(
        r#"(data (i32.const 0x2000) "../../../../../../etc/passwd")
           (data (i32.const 0x2100) "out.txt")
           (func (export "_start")
             (drop (call $path_symlink (i32.const 0x2000) (i32.const 28) (i32.const 3)
                                       (i32.const 0x2100) (i32.const 7))))"#,
    );
    let report = run(&sb, &wasm, &task);
    assert!(matches!(report.outcome, Outcome::Trap(_)), "{report:?}");
    assert!(report.output.is_empty());
}

#[test]
fn an_answer_status_must_leave_its_output_file_and_another_status_need_not() {
    let sb = sandbox();
    let exit10 = guest(r#"(func (export "_start") (call $proc_exit (i32.const 10)))"#);
    let file = TaskRun {
        output: OutputSource::File("out.txt".into()),
        ..task()
    };
    // Exit 10 is a failure of a job that answers with 0 alone: no file needed.
    assert_eq!(run(&sb, &exit10, &file).outcome, Outcome::Exited(10));
    // Where 10 is an answer, its output must be there, as exit 0's must.
    let answers = TaskRun {
        success_exits: vec![10, 20],
        ..file
    };
    assert!(answers.answered(&Outcome::Exited(10)));
    assert!(!answers.answered(&Outcome::Exited(0)));
    assert_eq!(
        run(&sb, &exit10, &answers).outcome,
        Outcome::Trap("declared output file missing".into())
    );
}

#[test]
fn bad_task_file_names_are_rejected() {
    let sb = sandbox();
    let prepared = sb.prepare(&hello()).unwrap();
    let host = tempfile::tempdir().unwrap();
    let input = host_file(host.path(), "x", b"x");
    for name in ["", ".", "..", "../x", "a/b", "/abs"] {
        let task = TaskRun {
            inputs: vec![(name.into(), input.clone())],
            ..task()
        };
        assert!(
            matches!(sb.run(&prepared, &task), Err(SandboxError::InvalidTask(_))),
            "{name:?}"
        );
        let task = TaskRun {
            output: OutputSource::File(name.into()),
            ..self::task()
        };
        assert!(
            matches!(sb.run(&prepared, &task), Err(SandboxError::InvalidTask(_))),
            "{name:?}"
        );
    }
    let twice = TaskRun {
        inputs: vec![("a".into(), input.clone()), ("a".into(), input.clone())],
        ..task()
    };
    assert!(matches!(
        sb.run(&prepared, &twice),
        Err(SandboxError::InvalidTask(_))
    ));
    let missing = TaskRun {
        inputs: vec![("a".into(), host.path().join("nope"))],
        ..task()
    };
    assert!(matches!(
        sb.run(&prepared, &missing),
        Err(SandboxError::Setup(_))
    ));
}

#[test]
fn runs_are_deterministic_and_seeded() {
    let sb = sandbox();
    let wasm = entropy();
    let first = run(&sb, &wasm, &task());
    let second = run(&sb, &wasm, &task());
    assert_eq!(first.outcome, Outcome::Exited(0));
    assert_eq!(first.output.len(), 48);
    assert_eq!(first.output, second.output);
    assert_eq!(first.output_hash, second.output_hash);
    assert_eq!(first.fuel_used, second.fuel_used);

    // A fresh sandbox gives the same bytes and fuel too.
    let other = run(&sandbox(), &wasm, &task());
    assert_eq!(first.output_hash, other.output_hash);
    assert_eq!(first.fuel_used, other.fuel_used);

    // The clocks are frozen at the virtual time.
    let realtime = u64::from_le_bytes(first.output[16..24].try_into().unwrap());
    assert_eq!(realtime, VIRTUAL_UNIX_TIME_SECS * 1_000_000_000);
    // NaN is canonical.
    let nan = u64::from_le_bytes(first.output[40..48].try_into().unwrap());
    assert_eq!(nan, 0x7ff8_0000_0000_0000);

    // The seed drives the random bytes (and only those).
    let reseeded = run(&sb, &wasm, &TaskRun { seed: 1, ..task() });
    assert_ne!(first.output[..16], reseeded.output[..16]);
    assert_eq!(first.output[16..], reseeded.output[16..]);
    assert_eq!(first.fuel_used, reseeded.fuel_used);
}

#[test]
fn sleeping_returns_at_once_under_virtual_time() {
    let sb = sandbox();
    // One relative monotonic-clock subscription of 10 s, then a loop: a host that really slept
    // would report Timeout.
    let wasm = guest(
        r#"(func (export "_start") (local $i i32)
             (i64.store (i32.const 0x2000) (i64.const 7))
             (i32.store8 (i32.const 0x2008) (i32.const 0))
             (i32.store (i32.const 0x2010) (i32.const 1))
             (i64.store (i32.const 0x2018) (i64.const 10000000000))
             (if (call $poll_oneoff (i32.const 0x2000) (i32.const 0x3000) (i32.const 1) (i32.const 0x120))
               (then (call $proc_exit (i32.const 1))))
             (if (i32.ne (i32.load (i32.const 0x120)) (i32.const 1)) (then (call $proc_exit (i32.const 2))))
             (if (i64.ne (i64.load (i32.const 0x3000)) (i64.const 7)) (then (call $proc_exit (i32.const 3))))
             (loop $l
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 100)))))"#,
    );
    let report = run(
        &sb,
        &wasm,
        &TaskRun {
            wall_limit: Duration::from_secs(2),
            ..task()
        },
    );
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert!(report.wall_time < Duration::from_secs(2));
}

/// Calls `args_sizes_get` `n` times.
fn host_calls(n: u32) -> Vec<u8> {
    guest(&format!(
        r#"(func (export "_start") (local $i i32)
             (loop $l
               (drop (call $args_sizes_get (i32.const 0x110) (i32.const 0x114)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const {n})))))"#
    ))
}

#[test]
fn host_calls_cost_fuel() {
    let sb = sandbox();
    let ten = run(&sb, &host_calls(10), &task());
    let twenty = run(&sb, &host_calls(20), &task());
    assert_eq!(ten.outcome, Outcome::Exited(0));
    assert_eq!(twenty.outcome, Outcome::Exited(0));
    let per_call = (twenty.fuel_used - ten.fuel_used) / 10;
    assert!(
        (HOSTCALL_FUEL..HOSTCALL_FUEL + 50).contains(&per_call),
        "{per_call}"
    );
    // A guest that only makes host calls still runs out of fuel.
    let short = TaskRun {
        fuel_limit: 5 * HOSTCALL_FUEL,
        ..task()
    };
    let report = run(&sb, &host_calls(1_000_000), &short);
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, short.fuel_limit);
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let sb = sandbox();
    let task = TaskRun {
        fuel_limit: 5_000_000,
        ..task()
    };
    let report = run(&sb, &spin(), &task);
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, task.fuel_limit);
    assert!(report.output.is_empty());
    assert_still_healthy(&sb);
}

#[test]
fn infinite_loop_with_huge_fuel_times_out() {
    let sb = sandbox();
    let task = TaskRun {
        fuel_limit: u64::MAX,
        wall_limit: Duration::from_millis(200),
        ..task()
    };
    let report = run(&sb, &spin(), &task);
    assert_eq!(report.outcome, Outcome::Timeout);
    assert!(report.wall_time >= Duration::from_millis(200));
    assert_still_healthy(&sb);
}

#[test]
fn the_wall_limit_stops_loops_call_trees_and_host_calls_soon_after_it() {
    // A tree of calls without a loop (each of 8 levels calls the next ten times: 10^8 calls),
    // and a loop of host calls: the guest yields at every function entry's fuel check too, and
    // the call hook looks at the clock, so each stops soon after its limit.
    let call_tree = {
        let mut funcs = String::from("(func $f8)");
        for level in (0..8).rev() {
            let calls = format!("(call $f{})", level + 1).repeat(10);
            funcs.push_str(&format!("(func $f{level} {calls})"));
        }
        guest(&format!(
            r#"{funcs} (func (export "_start") (loop $l (call $f0) (br $l)))"#
        ))
    };
    let host_calls = guest(
        r#"(func (export "_start")
             (loop $l (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 0x2000)))
                      (br $l)))"#,
    );
    let sb = sandbox();
    for (what, wasm) in [
        ("call tree", call_tree),
        ("host calls", host_calls),
        ("loop", spin()),
    ] {
        let task = TaskRun {
            fuel_limit: u64::MAX,
            wall_limit: Duration::from_millis(300),
            ..task()
        };
        let report = run(&sb, &wasm, &task);
        assert_eq!(report.outcome, Outcome::Timeout, "{what}");
        assert!(
            report.wall_time < Duration::from_secs(10),
            "{what}: stopped only after {:?}",
            report.wall_time
        );
    }
    assert_still_healthy(&sb);
}

#[test]
fn a_wall_limit_past_the_end_of_time_leaves_fuel_to_bound_the_run() {
    let sb = sandbox();
    let task = TaskRun {
        fuel_limit: 1_000_000,
        wall_limit: Duration::MAX,
        ..task()
    };
    let report = run(&sb, &spin(), &task);
    assert_eq!(report.outcome, Outcome::OutOfFuel);
    assert_eq!(report.fuel_used, task.fuel_limit);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let sb = sandbox();
    let bomb = memory_bomb();
    let task = TaskRun {
        memory_limit_bytes: 4 << 20,
        ..task()
    };
    let report = run(&sb, &bomb, &task);
    assert_eq!(report.outcome, Outcome::MemoryLimit);
    let again = run(&sb, &bomb, &task);
    assert_eq!(
        (again.outcome, again.fuel_used),
        (report.outcome, report.fuel_used)
    );
    assert_still_healthy(&sb);

    // An initial memory above the limit fails at instantiation.
    let big = wat::parse_str(r#"(module (memory (export "memory") 256) (func (export "_start")))"#)
        .unwrap();
    let report = run(&sb, &big, &task);
    assert_eq!(report.outcome, Outcome::MemoryLimit);
    // ... and the same module is fine with room to spare.
    let roomy = TaskRun {
        memory_limit_bytes: 32 << 20,
        ..task
    };
    assert_eq!(run(&sb, &big, &roomy).outcome, Outcome::Exited(0));
    assert_still_healthy(&sb);
}

/// A memory growth within the task's limits that the operating system refuses (here: the
/// process's data limit, as a machine out of memory or of address-space maps would) is the
/// host's failure, not the guest's: the run ends with `SandboxError::Host`, never with a
/// `MemoryLimit` report whose fuel would disagree with every other machine's. The limit is set
/// in a child process (this test binary run again), so the other tests keep theirs.
#[cfg(target_os = "linux")]
#[test]
fn a_memory_growth_the_host_refuses_is_a_host_failure_not_a_verdict() {
    const CHILD: &str = "GRIDMINT_SANDBOX_RLIMIT_CHILD";
    let bomb = memory_bomb();
    let task = TaskRun {
        memory_limit_bytes: 512 << 20,
        ..task()
    };
    if std::env::var_os(CHILD).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_memory_growth_the_host_refuses_is_a_host_failure_not_a_verdict",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            // No backtraces: symbolizing one allocates more than the data limit leaves.
            .env("RUST_BACKTRACE", "0")
            .env("RUST_LIB_BACKTRACE", "0")
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert!(log.contains("1 passed"), "{log}");
        return;
    }
    // On-demand memories: the data limit governs the pages they make writable. (The pooling
    // allocator's slots are not counted against it, so no limit provokes the failure there; the
    // limiter treats a failed system call the same way under either.)
    let sb = Sandbox::new(SandboxConfig {
        pooling: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    // Unlimited, the bomb stops at the task's limit.
    assert_eq!(run(&sb, &bomb, &task).outcome, Outcome::MemoryLimit);
    // The data limit: what the process uses now and 8 MiB more, far below the task's 512 MiB.
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let data_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmData:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let limit = (data_kib << 10) + (8 << 20);
    rustix::process::setrlimit(
        rustix::process::Resource::Data,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: None,
        },
    )
    .unwrap();
    match sb.run_bytes(&bomb, &task) {
        Err(SandboxError::Host(why)) => eprintln!("host failure: {why}"),
        other => panic!("a growth the host refused must be a host failure: {other:?}"),
    }
    // A guest refused by its own limit is still a verdict, under the same data limit.
    let small = TaskRun {
        memory_limit_bytes: 1 << 20,
        ..task
    };
    let first = run(&sb, &bomb, &small);
    assert_eq!(first.outcome, Outcome::MemoryLimit);
    assert_eq!(run(&sb, &bomb, &small).fuel_used, first.fuel_used);
}

/// Writes 64 KiB chunks to stdout; stops at the first failed write and exits 0 if
/// `stop_on_error`, otherwise ignores errors forever.
fn stdout_flood(stop_on_error: bool) -> Vec<u8> {
    let on_error = if stop_on_error { "(return)" } else { "(nop)" };
    guest(&format!(
        r#"(func (export "_start")
             (loop $l
               (if (call $write (i32.const 1) (i32.const 0x2000) (i32.const 0x10000))
                 (then {on_error}))
               (br $l)))"#
    ))
}

#[test]
fn huge_stdout_is_output_too_large_and_bounded_on_the_host() {
    let sb = Sandbox::new(SandboxConfig {
        max_output_bytes: 1 << 20,
        ..SandboxConfig::default()
    })
    .unwrap();
    // The guest stops by itself once a write fails: so the host refused to buffer
    // beyond the cap (otherwise this would loop until fuel runs out).
    let report = run(&sb, &stdout_flood(true), &task());
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.output.is_empty());
    assert_eq!(report.output_hash, *blake3::hash(b"").as_bytes());
    assert!(report.fuel_used < task().fuel_limit);

    // A guest ignoring the write errors burns its fuel but is still OutputTooLarge.
    let report = run(&sb, &stdout_flood(false), &task());
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.output.is_empty());

    // Exactly at the cap is fine.
    let exact = guest(
        r#"(func (export "_start") (local $i i32)
             (loop $l
               (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 0x10000)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 16)))))"#,
    );
    let report = run(&sb, &exact, &task());
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output.len(), 1 << 20);
    assert_still_healthy(&sb);
}

/// A job's own output cap (its storage claim) holds below the sandbox's, and never lifts it.
#[test]
fn a_runs_own_output_cap_holds_below_the_configured_one() {
    let sb = Sandbox::new(SandboxConfig {
        max_output_bytes: 1 << 20,
        ..SandboxConfig::default()
    })
    .unwrap();
    // Writes 16 × 64 KiB = 1 MiB.
    let mib = guest(
        r#"(func (export "_start") (local $i i32)
             (loop $l
               (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 0x10000)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               (br_if $l (i32.lt_u (local.get $i) (i32.const 16)))))"#,
    );
    let capped = |cap| TaskRun {
        max_output_bytes: cap,
        ..task()
    };
    let report = run(&sb, &mib, &capped(Some((1 << 20) - 1)));
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.output.is_empty());
    // Twice: the same outcome and fuel (deterministic at the cap).
    let again = run(&sb, &mib, &capped(Some((1 << 20) - 1)));
    assert_eq!(
        (again.outcome, again.fuel_used),
        (report.outcome, report.fuel_used)
    );
    let report = run(&sb, &mib, &capped(Some(1 << 20)));
    assert_eq!(report.outcome, Outcome::Exited(0));
    // A cap above the configured one does not lift it.
    let report = run(&sb, &stdout_flood(true), &capped(Some(1 << 30)));
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert_still_healthy(&sb);
}

/// Creates `out.bin` and writes 64 KiB chunks into it: `chunks` of them, or forever.
fn disk_writer(chunks: Option<u32>) -> Vec<u8> {
    let stop = match chunks {
        Some(n) => format!("(br_if $l (i32.lt_u (local.get $i) (i32.const {n})))"),
        None => "(br $l)".to_string(),
    };
    guest(&format!(
        r#"(data (i32.const 0x1800) "out.bin")
           (func (export "_start") (local $fd i32) (local $i i32)
             (local.set $fd (call $open (i32.const 0x1800) (i32.const 7)
               (i32.const {OFLAGS_CREAT_TRUNC}) (i64.const {RIGHT_FD_WRITE})))
             (loop $l
               (drop (call $write (local.get $fd) (i32.const 0x2000) (i32.const 0x10000)))
               (local.set $i (i32.add (local.get $i) (i32.const 1)))
               {stop}))"#
    ))
}

#[test]
fn disk_bomb_is_stopped_by_the_working_directory_quota() {
    // max_output 256 KiB => quota 1 MiB of files.
    let sb = Sandbox::new(SandboxConfig {
        max_output_bytes: 256 << 10,
        ..SandboxConfig::default()
    })
    .unwrap();
    let task = TaskRun {
        output: OutputSource::File("result.txt".into()),
        ..task()
    };
    // 2 MiB written, then a normal exit: caught by the check after the run.
    let report = run(&sb, &disk_writer(Some(32)), &task);
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    // Within the quota is fine (the declared output is simply missing here).
    let report = run(&sb, &disk_writer(Some(8)), &task);
    assert_eq!(
        report.outcome,
        Outcome::Trap("declared output file missing".into())
    );
    // Writing forever is interrupted by the watchdog long before the wall limit.
    let forever = TaskRun {
        fuel_limit: u64::MAX,
        ..task
    };
    let report = run(&sb, &disk_writer(None), &forever);
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.wall_time < forever.wall_limit);
    assert_still_healthy(&sb);
}

#[test]
fn output_file_over_the_cap_is_output_too_large() {
    let sb = Sandbox::new(SandboxConfig {
        max_output_bytes: 100 << 10,
        ..SandboxConfig::default()
    })
    .unwrap();
    let task = TaskRun {
        output: OutputSource::File("out.bin".into()),
        ..task()
    };
    let report = run(&sb, &disk_writer(Some(2)), &task);
    assert_eq!(report.outcome, Outcome::OutputTooLarge);
    assert!(report.output.is_empty());
    let report = run(&sb, &disk_writer(Some(1)), &task);
    assert_eq!(report.outcome, Outcome::Exited(0));
    assert_eq!(report.output.len(), 64 << 10);
}

#[test]
fn traps_are_reported_with_their_reason() {
    let sb = sandbox();
    let wasm = guest(r#"(func (export "_start") (unreachable))"#);
    let report = run(&sb, &wasm, &task());
    assert!(
        matches!(&report.outcome, Outcome::Trap(msg) if msg.contains("unreachable")),
        "{:?}",
        report.outcome
    );
    let wasm = guest(
        r#"(func (export "_start") (drop (i32.div_u (i32.const 1) (i32.load (i32.const 0)))))"#,
    );
    let report = run(&sb, &wasm, &task());
    assert!(
        matches!(&report.outcome, Outcome::Trap(msg) if msg.contains("divide by zero")),
        "{:?}",
        report.outcome
    );
    let wasm = guest(r#"(func $f (export "_start") (call $f))"#);
    let report = run(&sb, &wasm, &task());
    assert!(
        matches!(&report.outcome, Outcome::Trap(_)),
        "{:?}",
        report.outcome
    );
    // An exit status outside WASI's range is a trap, not an exit.
    let wasm = guest(r#"(func (export "_start") (call $proc_exit (i32.const 200)))"#);
    assert!(matches!(run(&sb, &wasm, &task()).outcome, Outcome::Trap(_)));
    assert_still_healthy(&sb);
}

#[test]
fn invalid_modules_are_rejected() {
    let sb = sandbox();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"definitely not wasm".to_vec()),
        ("empty", Vec::new()),
        (
            "text format",
            b"(module (func (export \"_start\")))".to_vec(),
        ),
        ("truncated", hello()[..hello().len() / 2].to_vec()),
        (
            "non-wasi import",
            wat::parse_str(
                r#"(module (import "env" "steal" (func)) (memory (export "memory") 1)
                   (func (export "_start")))"#,
            )
            .unwrap(),
        ),
        (
            "wasi import with the wrong type",
            wat::parse_str(
                r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                   (memory (export "memory") 1) (func (export "_start")))"#,
            )
            .unwrap(),
        ),
        (
            "_start with params",
            wat::parse_str(r#"(module (func (export "_start") (param i32)))"#).unwrap(),
        ),
        (
            "threads",
            wat::parse_str(
                r#"(module (memory (export "memory") 1 1 shared) (func (export "_start")))"#,
            )
            .unwrap(),
        ),
    ];
    for (name, bytes) in cases {
        let err = sb.prepare(&bytes).expect_err(name);
        assert!(
            matches!(err, SandboxError::InvalidModule(_)),
            "{name}: {err:?}"
        );
        assert!(sb.run_bytes(&bytes, &task()).is_err(), "{name}");
    }
    assert_eq!(sb.modules_compiled(), 0);
    assert_still_healthy(&sb);
}

#[test]
fn preparing_the_same_bytes_twice_hits_the_cache() {
    let sb = sandbox();
    let a = sb.prepare(&hello()).unwrap();
    let b = sb.prepare(&hello()).unwrap();
    assert!(Prepared::ptr_eq(&a, &b));
    assert_eq!(a.hash(), *blake3::hash(&hello()).as_bytes());
    assert_eq!(sb.modules_compiled(), 1);
    let c = sb.prepare(&spin()).unwrap();
    assert!(!Prepared::ptr_eq(&a, &c));
    assert_eq!(sb.modules_compiled(), 2);
    run(&sb, &hello(), &task());
    assert_eq!(sb.modules_compiled(), 2);
}

#[test]
fn concurrent_runs_agree() {
    let sb = Arc::new(sandbox());
    let prepared = sb.prepare(&entropy()).unwrap();
    let expected = sb.run(&prepared, &task()).unwrap();
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let sb = Arc::clone(&sb);
            let prepared = prepared.clone();
            std::thread::spawn(move || {
                (0..4)
                    .map(|j| {
                        if (i + j) % 3 == 0 {
                            // Hostile neighbours must not disturb the others.
                            let spin = TaskRun {
                                fuel_limit: 1_000_000,
                                ..task()
                            };
                            let r = sb.run_bytes(&self::spin(), &spin).unwrap();
                            assert_eq!(r.outcome, Outcome::OutOfFuel);
                        }
                        sb.run(&prepared, &task()).unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for report in thread.join().unwrap() {
            assert_eq!(report.outcome, Outcome::Exited(0));
            assert_eq!(report.output_hash, expected.output_hash);
            assert_eq!(report.fuel_used, expected.fuel_used);
        }
    }
}

#[test]
fn pooling_and_on_demand_allocation_run_the_same() {
    let pooled = Sandbox::new(SandboxConfig {
        pooling: true,
        ..SandboxConfig::default()
    })
    .unwrap();
    let plain = Sandbox::new(SandboxConfig {
        pooling: false,
        ..SandboxConfig::default()
    })
    .unwrap();
    let a = run(&pooled, &entropy(), &task());
    let b = run(&plain, &entropy(), &task());
    assert_eq!(a.outcome, Outcome::Exited(0));
    assert_eq!(a.output_hash, b.output_hash);
    assert_eq!(a.fuel_used, b.fuel_used);
    let bomb = TaskRun {
        memory_limit_bytes: 1 << 20,
        ..task()
    };
    let grow = memory_bomb();
    for sb in [&pooled, &plain] {
        assert_eq!(run(sb, &grow, &bomb).outcome, Outcome::MemoryLimit);
        assert_still_healthy(sb);
    }
}

/// The repository's C guests, when they have been built.
fn repo_guest(path: &str) -> Option<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
    std::fs::read(root.join(path)).ok()
}

#[test]
fn c_guests_behave_when_present() {
    let sb = sandbox();
    let big = TaskRun {
        fuel_limit: 500_000_000,
        memory_limit_bytes: 64 << 20,
        wall_limit: Duration::from_secs(20),
        ..TaskRun::default()
    };
    if let Some(wasm) = repo_guest("noop.wasm") {
        let report = run(&sb, &wasm, &big);
        assert_eq!(report.outcome, Outcome::Exited(0));
        assert!(report.output.is_empty());
    }
    if let Some(wasm) = repo_guest("pi.wasm") {
        let task = TaskRun {
            args: vec!["10000".into(), "7".into()],
            ..big.clone()
        };
        let a = run(&sb, &wasm, &task);
        let b = run(&sandbox(), &wasm, &task);
        assert_eq!(a.outcome, Outcome::Exited(0), "{a:?}");
        assert!(a.output.ends_with(b" 10000\n"), "{a:?}");
        assert_eq!((a.output_hash, a.fuel_used), (b.output_hash, b.fuel_used));
    }
    if let Some(wasm) = repo_guest("inspect.wasm") {
        let host = tempfile::tempdir().unwrap();
        let input = host_file(host.path(), "input.txt", b"hi");
        host_file(host.path(), "secret", b"nope");
        let task = TaskRun {
            args: vec!["one".into()],
            env: vec![("K".into(), "v".into())],
            stdin: b"12345".to_vec(),
            inputs: vec![("input.txt".into(), input)],
            seed: 42,
            ..big.clone()
        };
        let a = run(&sb, &wasm, &task);
        let b = run(&sb, &wasm, &task);
        assert_eq!(a.outcome, Outcome::Exited(0), "{a:?}");
        assert_eq!((a.output_hash, a.fuel_used), (b.output_hash, b.fuel_used));
        let text = String::from_utf8(a.output).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let rand = lines.iter().find(|l| l.starts_with("rand ")).copied();
        assert_eq!(
            lines
                .iter()
                .filter(|l| !l.starts_with("rand "))
                .copied()
                .collect::<Vec<_>>(),
            [
                "arg[0]=task",
                "arg[1]=one",
                "env K=v",
                "file input.txt 2",
                "stdin 5",
                &format!("time {VIRTUAL_UNIX_TIME_SECS}"),
                "open /etc/passwd: denied",
                "open ../secret: denied",
            ],
            "{text}"
        );
        let other_seed = run(
            &sb,
            &wasm,
            &TaskRun {
                seed: 43,
                ..task.clone()
            },
        );
        let other = String::from_utf8(other_seed.output).unwrap();
        assert!(
            rand.is_some_and(|r| r.len() == 21 && !other.contains(r)),
            "{text}"
        );

        let write = TaskRun {
            env: vec![("WRITE_OUT".into(), "written".into())],
            output: OutputSource::File("out.txt".into()),
            ..task
        };
        let report = run(&sb, &wasm, &write);
        assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
        assert_eq!(report.output, b"written");
    }
    let hostile = [
        (
            "hostile/spin.wasm",
            Outcome::OutOfFuel,
            OutputSource::Stdout,
        ),
        (
            "hostile/membomb.wasm",
            Outcome::MemoryLimit,
            OutputSource::Stdout,
        ),
        (
            "hostile/bigout.wasm",
            Outcome::OutputTooLarge,
            OutputSource::Stdout,
        ),
        (
            "hostile/exit3.wasm",
            Outcome::Exited(3),
            OutputSource::Stdout,
        ),
        (
            "hostile/diskbomb.wasm",
            Outcome::OutputTooLarge,
            OutputSource::File("out.txt".into()),
        ),
    ];
    for (path, expected, output) in hostile {
        if let Some(wasm) = repo_guest(path) {
            let task = TaskRun {
                output,
                fuel_limit: u64::MAX,
                wall_limit: Duration::from_secs(20),
                ..big.clone()
            };
            let task = if expected == Outcome::OutOfFuel {
                big.clone()
            } else {
                task
            };
            let report = run(&sb, &wasm, &task);
            assert_eq!(report.outcome, expected, "{path}: {report:?}");
            assert_still_healthy(&sb);
        }
    }
    if let Some(wasm) = repo_guest("hostile/exit3.wasm") {
        assert_eq!(run(&sb, &wasm, &big).output, b"bye\n");
    }
    if let Some(wasm) = repo_guest("hostile/trap.wasm") {
        let report = run(&sb, &wasm, &big);
        assert!(
            matches!(&report.outcome, Outcome::Trap(m) if m.contains("unreachable")),
            "{report:?}"
        );
    }
}

/// Stats `data` and the working directory, then lists the directory twice — whole into a
/// 64 KiB buffer, and from cookie 3 into a 40-byte one — and prints the raw structures:
/// `filestat(data) filestat(/) bufused listing bufused page`.
fn stat_and_list() -> Vec<u8> {
    guest(
        r#"(data (i32.const 0x1000) "data")
           (func $check (param $errno i32)
             (if (local.get $errno) (then (call $proc_exit (local.get $errno)))))
           (func (export "_start")
             (call $check (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 0x1000) (i32.const 4) (i32.const 0x3000)))
             (drop (call $write (i32.const 1) (i32.const 0x3000) (i32.const 64)))
             (call $check (call $fd_filestat_get (i32.const 3) (i32.const 0x3000)))
             (drop (call $write (i32.const 1) (i32.const 0x3000) (i32.const 64)))
             (call $check (call $fd_readdir (i32.const 3) (i32.const 0x4000) (i32.const 0x8000) (i64.const 0) (i32.const 0x120)))
             (drop (call $write (i32.const 1) (i32.const 0x120) (i32.const 4)))
             (drop (call $write (i32.const 1) (i32.const 0x4000) (i32.load (i32.const 0x120))))
             (call $check (call $fd_readdir (i32.const 3) (i32.const 0x1800) (i32.const 40) (i64.const 3) (i32.const 0x124)))
             (drop (call $write (i32.const 1) (i32.const 0x124) (i32.const 4)))
             (drop (call $write (i32.const 1) (i32.const 0x1800) (i32.load (i32.const 0x124)))))"#,
    )
}

/// `names` as inputs, in that order, each a file in a fresh host directory with a host
/// modification time of `mtime_secs` (so the copies differ in order and in every host time).
fn inputs_in_order(
    names: &[String],
    mtime_secs: u64,
) -> (tempfile::TempDir, Vec<(String, PathBuf)>) {
    let dir = tempfile::tempdir().unwrap();
    let time = std::time::UNIX_EPOCH + Duration::from_secs(mtime_secs);
    let inputs = names
        .iter()
        .map(|name| {
            let path = host_file(dir.path(), name, name.as_bytes());
            let file = std::fs::File::options().write(true).open(&path).unwrap();
            file.set_times(
                std::fs::FileTimes::new()
                    .set_modified(time)
                    .set_accessed(time),
            )
            .unwrap();
            (name.clone(), path)
        })
        .collect();
    (dir, inputs)
}

/// The names of a raw `fd_readdir` listing, in order.
fn listed_names(mut listing: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    while listing.len() >= 24 {
        let len = u32::from_le_bytes(listing[16..20].try_into().unwrap()) as usize;
        let Some(name) = listing.get(24..24 + len) else {
            break;
        };
        names.push(String::from_utf8(name.to_vec()).unwrap());
        listing = &listing[24 + len..];
    }
    names
}

/// What a guest sees of its files — times, inode and device numbers, link counts, directory
/// sizes, the order of a listing and its cookies — is the same whatever the host's copies look
/// like: inputs given in another order, made at other times, in another host directory, on
/// another run (issue 15: CPython's `zipfile` saw the host's modification times).
#[test]
fn file_times_inodes_and_listing_order_are_the_same_on_every_host() {
    let sb = sandbox();
    let mut names: Vec<String> = ["data", "b", "zz", "a", "c.txt", "B"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let (_one, forward) = inputs_in_order(&names, 1_000_000_000);
    names.reverse();
    let (_two, backward) = inputs_in_order(&names, 1_700_000_000);
    let run_with = |inputs: Vec<(String, PathBuf)>| {
        let report = run(&sb, &stat_and_list(), &TaskRun { inputs, ..task() });
        assert_eq!(report.outcome, Outcome::Exited(0), "{report:?}");
        report
    };
    let first = run_with(forward);
    let second = run_with(backward);
    assert_eq!(first.output, second.output);
    assert_eq!(first.fuel_used, second.fuel_used);
    let out = &first.output;
    let frozen = VIRTUAL_UNIX_TIME_SECS * 1_000_000_000;
    let u64_at = |o: usize| u64::from_le_bytes(out[o..o + 8].try_into().unwrap());
    // filestat(data): dev 1, a run-local inode number, a regular file of 4 bytes, one link,
    // every time the frozen clock.
    assert_eq!(u64_at(0), 1);
    assert_eq!(out[16], 4);
    assert_eq!(u64_at(24), 1);
    assert_eq!(u64_at(32), 4);
    assert_eq!([u64_at(40), u64_at(48), u64_at(56)], [frozen; 3]);
    // filestat(/): a directory of size 0, the frozen clock.
    assert_eq!(out[64 + 16], 3);
    assert_eq!(u64_at(64 + 32), 0);
    assert_eq!(u64_at(64 + 48), frozen);
    // The listing: `.`, `..`, then by name (bytes: upper case first).
    let used = u32::from_le_bytes(out[128..132].try_into().unwrap()) as usize;
    let listing = &out[132..132 + used];
    assert_eq!(
        listed_names(listing),
        [".", "..", "B", "a", "b", "c.txt", "data", "zz"]
    );
    // From cookie 3 into 40 bytes: the fourth entry ("a", 25 bytes) whole, then the start of
    // the fifth's header.
    let page_used = u32::from_le_bytes(out[132 + used..136 + used].try_into().unwrap());
    assert_eq!(page_used, 40);
    let page = &out[136 + used..];
    assert_eq!(&page[24..25], b"a");
    assert_eq!(
        u64::from_le_bytes(page[0..8].try_into().unwrap()),
        4,
        "its cookie"
    );
}

/// A directory too large to gather in one call (more than 64 KiB of entries) is listed whole, in
/// order, and the fuel a listing costs does not depend on how the host ordered it.
#[test]
fn a_large_listing_is_gathered_whole_and_costs_the_same_fuel_everywhere() {
    let sb = sandbox();
    let mut names: Vec<String> = (0..1500)
        .map(|i| format!("input-file-number-{i:05}"))
        .collect();
    let (_one, forward) = inputs_in_order(&names, 1_000_000_000);
    names.reverse();
    let (_two, backward) = inputs_in_order(&names, 1_600_000_000);
    let big = TaskRun {
        memory_limit_bytes: 64 << 20,
        ..task()
    };
    let (_data_dir, data_file) = inputs_in_order(&["data".to_string()], 1);
    let data = |mut inputs: Vec<(String, PathBuf)>| {
        inputs.extend(data_file.clone());
        inputs
    };
    let first = run(
        &sb,
        &stat_and_list(),
        &TaskRun {
            inputs: data(forward),
            ..big.clone()
        },
    );
    let second = run(
        &sb,
        &stat_and_list(),
        &TaskRun {
            inputs: data(backward),
            ..big
        },
    );
    assert_eq!(first.outcome, Outcome::Exited(0), "{first:?}");
    assert_eq!(first.output, second.output);
    assert_eq!(first.fuel_used, second.fuel_used);
    let used = u32::from_le_bytes(first.output[128..132].try_into().unwrap()) as usize;
    // The 32 KiB buffer holds the first entries of the sorted listing.
    let names = listed_names(&first.output[132..132 + used]);
    assert_eq!(names[..3], [".", "..", "data"]);
    assert_eq!(names[3], "input-file-number-00000");
    assert!(names.windows(2).skip(2).all(|w| w[0] < w[1]), "{names:?}");
}

/// A module that is not a WASI command runs the job's entry export: after `_initialize` when it
/// exports one, and an `i32` result is the exit status. Without an entry it needs `_start`.
#[test]
fn a_reactor_runs_its_entry_after_initialize() {
    let sb = sandbox();
    let reactor = guest(
        r#"(global $ready (mut i32) (i32.const 0))
           (data (i32.const 0x2000) "hello\n")
           (func (export "_initialize") (global.set $ready (i32.const 7)))
           (func (export "say") (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 6))))
           (func (export "status") (result i32) (global.get $ready))"#,
    );
    let entry = |name: &str| TaskRun {
        entry: Some(name.into()),
        ..task()
    };
    let said = run(&sb, &reactor, &entry("say"));
    assert_eq!(
        (said.outcome, said.output),
        (Outcome::Exited(0), b"hello\n".to_vec())
    );
    // `_initialize` ran first: the status is what it set.
    assert_eq!(
        run(&sb, &reactor, &entry("status")).outcome,
        Outcome::Exited(7)
    );
    for (task, why) in [
        (task(), "needs the job's `entry`"),
        (entry("missing"), "does not export the function `missing`"),
    ] {
        match sb.run_bytes(&reactor, &task) {
            Err(SandboxError::InvalidModule(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("{why}: {other:?}"),
        }
        let admitted = sandbox::admit_entry(&reactor, task.entry.as_deref());
        assert!(admitted.is_err_and(|e| e.contains(why)));
    }
    assert!(sandbox::admit_entry(&reactor, Some("status")).is_ok());
    assert_still_healthy(&sb);
}

/// Atomic instructions on an ordinary (non-shared) memory run like plain ones, the same on every
/// run: an add returns the old value, `notify` wakes nobody (0), and `wait` traps (the spec's rule
/// for a memory no other thread can reach).
#[test]
fn atomics_on_an_ordinary_memory_are_deterministic() {
    let sb = sandbox();
    let sum = guest(
        r#"(func (export "_start")
             (i32.store (i32.const 0x3000) (i32.const 5))
             (drop (i32.atomic.rmw.add (i32.const 0x3000) (i32.const 3)))
             (call $proc_exit (i32.add (i32.atomic.load (i32.const 0x3000))
                                       (memory.atomic.notify (i32.const 0x3000) (i32.const 1)))))"#,
    );
    let first = run(&sb, &sum, &task());
    assert_eq!(first.outcome, Outcome::Exited(8), "{first:?}");
    let again = run(&sandbox(), &sum, &task());
    assert_eq!(
        (again.outcome, again.fuel_used),
        (first.outcome, first.fuel_used)
    );
    let wait = guest(
        r#"(func (export "_start")
             (drop (memory.atomic.wait32 (i32.const 0x3000) (i32.const 0) (i64.const -1))))"#,
    );
    let report = run(&sb, &wait, &task());
    assert!(matches!(report.outcome, Outcome::Trap(_)), "{report:?}");
}

/// A guest with several memories (multi-memory) gets the task's memory limit for all of them
/// together, not for each.
#[test]
fn the_memory_limit_holds_for_all_of_a_guests_memories_together() {
    let sb = sandbox();
    // 16 MiB: 256 pages. Each memory grows by 160 pages: the first fits, the second does not.
    let two = guest(
        r#"(memory $a 1) (memory $b 1)
           (func (export "_start")
             (drop (memory.grow $a (i32.const 160)))
             (drop (memory.grow $b (i32.const 160))))"#,
    );
    let report = run(&sb, &two, &task());
    assert_eq!(report.outcome, Outcome::MemoryLimit, "{report:?}");
    let one = guest(
        r#"(memory $a 1) (memory $b 1)
           (func (export "_start") (drop (memory.grow $b (i32.const 160))))"#,
    );
    assert_eq!(run(&sb, &one, &task()).outcome, Outcome::Exited(0));
}

/// Exception handling runs the same everywhere: a thrown value reaches the same handler (here it
/// becomes the exit status), and one nobody catches is a trap.
#[test]
fn exceptions_are_caught_where_they_are_thrown_and_uncaught_ones_trap() {
    let sb = sandbox();
    let caught = guest(
        r#"(tag $e (param i32))
           (func $deep (param i32)
             (if (i32.eqz (local.get 0)) (then (throw $e (i32.const 42))))
             (call $deep (i32.sub (local.get 0) (i32.const 1))))
           (func (export "_start")
             (block $handler (result i32)
               (try_table (catch $e $handler) (call $deep (i32.const 100)))
               (i32.const 1))
             (call $proc_exit))"#,
    );
    let first = run(&sb, &caught, &task());
    assert_eq!(first.outcome, Outcome::Exited(42), "{first:?}");
    let again = run(&sandbox(), &caught, &task());
    assert_eq!(
        (again.outcome, again.fuel_used),
        (first.outcome, first.fuel_used)
    );
    let uncaught = guest(r#"(tag $e) (func (export "_start") (throw $e))"#);
    let report = run(&sb, &uncaught, &task());
    assert!(matches!(report.outcome, Outcome::Trap(_)), "{report:?}");
    assert_still_healthy(&sb);
}

/// Admission (`sandbox::admit`, what a coordinator checks at submission) and the sandbox
/// (`prepare`, what a provider does) agree on every module: the features the sandbox refuses
/// are refused at submission, with the reason.
#[test]
fn admission_and_the_sandbox_agree_on_which_modules_run() {
    let sb = sandbox();
    let wat = |text: &str| wat::parse_str(text).expect("test WAT must parse");
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("a command", hello(), None),
        (
            "shared memory",
            wat(r#"(module (memory 1 1 shared) (func (export "_start")))"#),
            Some("threads"),
        ),
        (
            "atomics on an ordinary memory",
            wat(r#"(module (memory 1) (func (export "_start")
                 (drop (i32.atomic.load (i32.const 0)))))"#),
            None,
        ),
        (
            "relaxed SIMD",
            wat(r#"(module (func (export "_start")
                 (drop (i32x4.relaxed_trunc_f32x4_s (v128.const i32x4 0 0 0 0)))))"#),
            Some("relaxed SIMD"),
        ),
        (
            "exceptions",
            wat(r#"(module (tag $e) (func (export "_start") (throw $e)))"#),
            None,
        ),
        (
            "legacy exceptions",
            wat(r#"(module (tag $e) (func (export "_start") try throw $e catch $e end))"#),
            Some("legacy_exceptions"),
        ),
        (
            "two memories",
            wat(r#"(module (memory 1) (memory $b 1) (func (export "_start")
                 (i32.store $b (i32.const 0) (i32.const 7))))"#),
            None,
        ),
        (
            "a 64-bit memory",
            wat(r#"(module (memory i64 1) (func (export "_start")
                 (i32.store (i64.const 8) (i32.const 7))))"#),
            None,
        ),
        (
            "garbage collection",
            wat(r#"(module (type $s (struct (field i32)))
                 (func (export "_start") (drop (struct.new $s (i32.const 1)))))"#),
            Some("garbage-collection proposal"),
        ),
        (
            "tail calls, multi-value, bulk memory, extended const and SIMD",
            wat(
                r#"(module (memory 1) (global i32 (i32.add (i32.const 1) (i32.const 2)))
                 (func $two (result i32 i32) (i32.const 1) (i32.const 2))
                 (func $tail (result i32 i32) (return_call $two))
                 (func (export "_start")
                   (memory.fill (i32.const 0) (i32.const 0) (i32.const 16))
                   (drop (i8x16.splat (i32.const 1)))
                   (call $tail) (drop) (drop)))"#,
            ),
            None,
        ),
        (
            "no _start",
            wat(r#"(module (func (export "main")))"#),
            Some("_start"),
        ),
        (
            "_initialize with a result",
            wat(r#"(module (func (export "_start"))
                 (func (export "_initialize") (result i32) (i32.const 0)))"#),
            None,
        ),
        (
            "_start with a parameter",
            wat(r#"(module (func (export "_start") (param i32)))"#),
            Some("[] -> []"),
        ),
        (
            "a foreign import",
            wat(r#"(module (import "env" "f" (func)) (func (export "_start")))"#),
            Some("only `wasi_snapshot_preview1`"),
        ),
        (
            "a socket extension (WasmEdge's sock_open), answered ENOSYS",
            wat(r#"(module
                 (import "wasi_snapshot_preview1" "sock_open"
                   (func $open (param i32 i32 i32) (result i32)))
                 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
                 (memory (export "memory") 1)
                 (func (export "_start")
                   (if (i32.ne (call $open (i32.const 0) (i32.const 0) (i32.const 8))
                               (i32.const 52))
                     (then (call $exit (i32.const 1))))))"#),
            None,
        ),
        (
            "a WASI function with another type",
            wat(
                r#"(module (import "wasi_snapshot_preview1" "fd_write" (func (param i32)))
                 (func (export "_start")))"#,
            ),
            Some("WASI preview 1's is [i32 i32 i32 i32] -> [i32]"),
        ),
        (
            "a function WASI does not have",
            wat(
                r#"(module (import "wasi_snapshot_preview1" "fd_frobnicate" (func))
                 (func (export "_start")))"#,
            ),
            Some("WASI preview 1 does not have"),
        ),
        (
            "not WebAssembly",
            b"\0asm but not really".to_vec(),
            Some(""),
        ),
    ];
    for (what, wasm, refused) in cases {
        let admitted = sandbox::admit(&wasm);
        // Prepared and checked against the task's entry (`_start`): what a provider does.
        let prepared = sb
            .prepare(&wasm)
            .and_then(|p| sb.run(&p, &task()).map(|_| p));
        assert_eq!(
            admitted.is_ok(),
            prepared.is_ok(),
            "{what}: admission says {admitted:?}, the sandbox {:?}",
            prepared.err()
        );
        match refused {
            None => {
                assert!(admitted.is_ok(), "{what}: {admitted:?}");
                // Taken means it runs: no host error, and the guest's own outcome.
                let report = sb.run(&prepared.unwrap(), &task());
                let report = report.unwrap_or_else(|e| panic!("{what}: {e:?}"));
                if what != "exceptions" {
                    assert_eq!(report.outcome, Outcome::Exited(0), "{what}: {report:?}");
                }
            }
            Some(reason) => {
                let why = admitted.expect_err(what);
                assert!(why.contains(reason), "{what}: {why}");
            }
        }
    }
}

/// A start function runs (and is metered) before the entry, under every profile, and a run with
/// one is the same everywhere; its fuel counts under profiles 3 and 4 too.
#[test]
fn a_start_function_is_metered_and_runs_alike() {
    let wasm = guest(
        r#"(global $n (mut i32) (i32.const 0))
           (data (i32.const 0x2000) "x")
           (func $init (local $i i32)
             (loop $l
               (global.set $n (i32.add (global.get $n) (local.get $i)))
               (br_if $l (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                                 (i32.const 100000)))))
           (start $init)
           (func (export "_start")
             (i32.store8 (i32.const 0x2000) (i32.add (i32.const 65) (i32.and (global.get $n) (i32.const 15))))
             (drop (call $write (i32.const 1) (i32.const 0x2000) (i32.const 1))))"#,
    );
    for profile in sandbox::Profile::ALL {
        let first = sandbox();
        let report = first
            .run(&first.prepare_for(&wasm, profile).unwrap(), &task())
            .unwrap();
        assert_eq!(
            report.outcome,
            Outcome::Exited(0),
            "{profile:?}: {report:?}"
        );
        assert!(
            report.fuel_used > 500_000,
            "{profile:?}: {}",
            report.fuel_used
        );
        let other = sandbox();
        let again = other
            .run(&other.prepare_for(&wasm, profile).unwrap(), &task())
            .unwrap();
        assert_eq!(
            (again.output, again.fuel_used),
            (report.output.clone(), report.fuel_used),
            "{profile:?}"
        );
        // Out of fuel inside the start function.
        let starved = TaskRun {
            fuel_limit: 1_000,
            ..task()
        };
        let report = first
            .run(&first.prepare_for(&wasm, profile).unwrap(), &starved)
            .unwrap();
        assert_eq!(report.outcome, Outcome::OutOfFuel, "{profile:?}");
    }
}
