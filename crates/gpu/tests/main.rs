//! The GPU sandbox on whatever adapter the machine has (in CI, Mesa's lavapipe, the software
//! Vulkan driver `.ci/run` installs): outputs against the CPU, fuel and outputs identical across
//! runs, devices and processes, fuel that bounds every loop, and every refusal typed.

use std::sync::OnceLock;
use std::time::Duration;

use gpu::{Gpu, GpuError, GpuOutcome, GpuReport, GpuTask, Shader, TaskBuffer, admit};

/// One device for the whole binary (opening one takes up to a few hundred milliseconds).
fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| match Gpu::open() {
        Ok(gpu) => gpu,
        Err(e) => panic!("the GPU tests need a GPU adapter: {e}"),
    })
}

fn words(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn floats(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn input(binding: u32, bytes: Vec<u8>) -> TaskBuffer {
    TaskBuffer {
        binding,
        bytes,
        output: false,
    }
}

fn output(binding: u32, bytes: usize) -> TaskBuffer {
    TaskBuffer {
        binding,
        bytes: vec![0; bytes],
        output: true,
    }
}

fn task(workgroups: [u32; 3], buffers: Vec<TaskBuffer>, fuel: u64) -> GpuTask {
    GpuTask {
        workgroups,
        buffers,
        fuel,
        max_bytes: 64 << 20,
        timeout: Duration::from_secs(60),
    }
}

fn run(shader: &Shader, task: &GpuTask) -> GpuReport {
    gpu().run(shader, task).expect("the task runs")
}

const MATMUL: &str = include_str!("../../../guests/gpu/matmul.wgsl");
const MATMUL_TILED: &str = include_str!("../../../guests/gpu/matmul-tiled.wgsl");

/// A 40x40 matrix product (not a multiple of the workgroup: some invocations return early) of
/// small integers, exact in `f32`, so the CPU's answer is the answer.
fn matmul_task(fuel: u64) -> (GpuTask, Vec<f32>) {
    let n = 40usize;
    let a: Vec<f32> = (0..n * n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let b: Vec<f32> = (0..n * n).map(|i| ((i * 5) % 13) as f32 - 6.0).collect();
    let mut c = vec![0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            c[y * n + x] = (0..n).map(|k| a[y * n + k] * b[k * n + x]).sum();
        }
    }
    let buffers = vec![
        input(0, words(&[n as u32, 0, 0, 0])),
        input(1, floats(&a)),
        input(2, floats(&b)),
        output(3, n * n * 4),
    ];
    (task([5, 5, 1], buffers, fuel), c)
}

#[test]
fn a_matrix_product_matches_the_cpu_and_its_fuel_and_bytes_repeat() {
    let shader = admit(MATMUL, "main").unwrap();
    let (t, expected) = matmul_task(1 << 40);
    let first = run(&shader, &t);
    assert_eq!(first.outcome, GpuOutcome::Completed);
    assert_eq!(first.outputs, vec![(3, floats(&expected))]);
    assert!(first.fuel > 0);
    // The same run again, on the same device and on a second device.
    assert_eq!(run(&shader, &t), first);
    let other = Gpu::open().unwrap();
    assert_eq!(other.run(&shader, &t).unwrap(), first);
    // The tiled product (barriers in its loop) gives the same bytes.
    let tiled = admit(MATMUL_TILED, "main").unwrap();
    let mut t16 = t.clone();
    t16.workgroups = [3, 3, 1];
    let r = run(&tiled, &t16);
    assert_eq!(
        (r.outcome, &r.outputs),
        (GpuOutcome::Completed, &first.outputs)
    );
    // Admitted again from the same source: the same shader, the same report.
    let again = admit(MATMUL, "main").unwrap();
    assert_eq!(again.hash, shader.hash);
    assert_eq!(run(&again, &t), first);
}

const LOOPS: &str = r#"
@group(0) @binding(0) var<storage, read> counts: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(4)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x;
    for (var i = 0u; i < counts[id.x]; i++) {
        x = x * 1664525u + 1013904223u;
    }
    out[id.x] = x;
}
"#;

fn lcg(mut x: u32, n: u32) -> u32 {
    for _ in 0..n {
        x = x.wrapping_mul(1664525).wrapping_add(1013904223);
    }
    x
}

fn loops(counts: [u32; 4], fuel: u64) -> GpuReport {
    let shader = admit(LOOPS, "main").unwrap();
    run(
        &shader,
        &task(
            [1, 1, 1],
            vec![input(0, words(&counts)), output(1, 16)],
            fuel,
        ),
    )
}

#[test]
fn fuel_counts_each_iteration_alike() {
    let base = loops([0; 4], 1 << 30);
    let r10 = loops([10, 10, 10, 10], 1 << 30);
    let r20 = loops([20, 20, 20, 20], 1 << 30);
    let r30 = loops([30, 30, 30, 30], 1 << 30);
    for r in [&base, &r10, &r20, &r30] {
        assert_eq!(r.outcome, GpuOutcome::Completed);
    }
    let step = r20.fuel - r10.fuel;
    assert!(step > 0 && r10.fuel > base.fuel);
    assert_eq!(r30.fuel - r20.fuel, step, "every iteration costs the same");
    let expected: Vec<u32> = (0..4).map(|i| lcg(i, 30)).collect();
    assert_eq!(r30.outputs, vec![(1, words(&expected))]);
    // Uneven work: each invocation pays for its own iterations.
    let uneven = loops([0, 10, 20, 30], 1 << 30);
    assert_eq!(uneven.fuel * 4, base.fuel + r10.fuel + r20.fuel + r30.fuel);
}

#[test]
fn a_run_given_exactly_its_fuel_completes_and_one_unit_less_runs_out() {
    let shader = admit(LOOPS, "main").unwrap();
    let counts = [25, 25, 25, 25];
    let full = loops(counts, 1 << 30);
    assert_eq!(full.outcome, GpuOutcome::Completed);
    // Four invocations doing the same work: each used a quarter; each gets fuel / 4.
    let each = full.fuel / 4;
    assert_eq!(each * 4, full.fuel);
    let exact = task(
        [1, 1, 1],
        vec![input(0, words(&counts)), output(1, 16)],
        full.fuel,
    );
    assert_eq!(run(&shader, &exact), full);
    let short = task(
        [1, 1, 1],
        vec![input(0, words(&counts)), output(1, 16)],
        (each - 1) * 4,
    );
    let stopped = run(&shader, &short);
    assert_eq!(stopped.outcome, GpuOutcome::OutOfFuel);
    assert_eq!(run(&shader, &short), stopped, "where it stops repeats");
}

const ENDLESS: &str = r#"
@group(0) @binding(0) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = id.x;
    loop {
        x = x ^ (x << 13u);
        x = x ^ (x >> 17u);
        if (x == 0xffffffffu) { break; }
    }
    out[id.x] = x;
}
"#;

#[test]
fn an_endless_loop_runs_out_of_fuel_at_the_same_place_every_time() {
    let shader = admit(ENDLESS, "main").unwrap();
    let t = task([2, 1, 1], vec![output(0, 128 * 4)], 128 * 5_000);
    let first = run(&shader, &t);
    assert_eq!(first.outcome, GpuOutcome::OutOfFuel);
    assert!(
        first.fuel > 128 * 5_000 && first.fuel < 128 * 5_100,
        "{first:?}"
    );
    assert_eq!(run(&shader, &t), first);
}

const BARRIER_LOOP: &str = r#"
@group(0) @binding(0) var<storage, read> rounds: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<storage, read_write> done: array<u32>;
var<workgroup> tile: array<u32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = lid.x;
    tile[i] = i + wid.x;
    var r = 0u;
    loop {
        if (r >= rounds[0]) { break; }
        workgroupBarrier();
        var left = tile[(i + 63u) % 64u];
        workgroupBarrier();
        // Uneven work: invocations spend their fuel at different rates.
        for (var k = 0u; k < i % 8u; k++) {
            left = left * 3u + 1u;
        }
        tile[i] = tile[i] + left;
        r++;
    }
    workgroupBarrier();
    out[wid.x * 64u + i] = tile[i];
    done[wid.x * 64u + i] = r;
}
"#;

fn barrier_loop_cpu(groups: u32, rounds: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for w in 0..groups {
        let mut tile: Vec<u32> = (0..64).map(|i| i + w).collect();
        for _ in 0..rounds {
            let left: Vec<u32> = (0..64).map(|i| tile[(i + 63) % 64]).collect();
            for i in 0..64 {
                let mut l = left[i];
                for _ in 0..i % 8 {
                    l = l.wrapping_mul(3).wrapping_add(1);
                }
                tile[i] = tile[i].wrapping_add(l);
            }
        }
        out.extend(tile);
    }
    out
}

#[test]
fn a_loop_with_barriers_is_left_by_the_whole_workgroup_together() {
    let shader = admit(BARRIER_LOOP, "main").unwrap();
    let done = run(
        &shader,
        &task(
            [3, 1, 1],
            vec![
                input(0, words(&[50])),
                output(1, 3 * 64 * 4),
                output(2, 3 * 64 * 4),
            ],
            1 << 30,
        ),
    );
    assert_eq!(done.outcome, GpuOutcome::Completed);
    assert_eq!(
        done.outputs,
        vec![
            (1, words(&barrier_loop_cpu(3, 50))),
            (2, words(&[50; 3 * 64]))
        ]
    );
    // Endless rounds: each workgroup stops together at the round where its thirstiest
    // invocation ran out (no hang, no undefined behaviour), at the same place every time.
    let t = task(
        [3, 1, 1],
        vec![
            input(0, words(&[u32::MAX])),
            output(1, 3 * 64 * 4),
            output(2, 3 * 64 * 4),
        ],
        3 * 64 * 2_000,
    );
    let stopped = run(&shader, &t);
    assert_eq!(stopped.outcome, GpuOutcome::OutOfFuel);
    let rounds = &stopped.outputs[1].1;
    let first = &rounds[..4];
    assert!(first != [0; 4]);
    assert!(rounds.chunks(4).all(|r| r == first), "{rounds:?}");
    // (The tiles are those at the stop: the invocation that ran out cut its last round short.)
    assert_eq!(run(&shader, &t), stopped);
}

const LONG_LOOP: &str = r#"
@group(0) @binding(0) var<storage, read> n: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(1)
fn main() {
    var sum = 0u;
    for (var i = 0u; i < n[0]; i++) {
        sum += i;
    }
    out[0] = sum;
}
"#;

#[test]
fn a_loop_the_driver_cuts_short_never_passes_for_a_result() {
    let shader = admit(LONG_LOOP, "main").unwrap();
    for n in [1_000u32, 65_534, 65_536, 300_000] {
        let r = run(
            &shader,
            &task(
                [1, 1, 1],
                vec![input(0, words(&[n])), output(1, 4)],
                1 << 31,
            ),
        );
        let expected = (0..n).fold(0u32, |s, i| s.wrapping_add(i));
        match r.outcome {
            GpuOutcome::Completed => assert_eq!(r.outputs, vec![(1, words(&[expected]))]),
            GpuOutcome::LoopCutShort => {
                eprintln!(
                    "{}: a loop of {n} iterations was cut short",
                    gpu().adapter().name
                )
            }
            other => panic!("{n} iterations: {other:?}"),
        }
    }
}

const HISTOGRAM: &str = r#"
@group(0) @binding(0) var<storage, read> values: array<u32>;
@group(0) @binding(1) var<storage, read_write> bins: array<atomic<u32>, 16>;
@group(0) @binding(2) var<storage, read_write> top: atomic<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    atomicAdd(&bins[values[id.x] % 16u], 1u);
    atomicMax(&top, values[id.x] >> 8u);
}
"#;

#[test]
fn order_free_atomics_are_admitted_and_agree() {
    let shader = admit(HISTOGRAM, "main").unwrap();
    let values: Vec<u32> = (0..4096u32)
        .map(|i| i.wrapping_mul(2654435761) >> 7)
        .collect();
    let mut bins = [0u32; 16];
    for v in &values {
        bins[(v % 16) as usize] += 1;
    }
    let top = values.iter().map(|v| v >> 8).max().unwrap();
    let t = task(
        [64, 1, 1],
        vec![input(0, words(&values)), output(1, 64), output(2, 4)],
        1 << 30,
    );
    let r = run(&shader, &t);
    assert_eq!(r.outcome, GpuOutcome::Completed);
    assert_eq!(r.outputs, vec![(1, words(&bins)), (2, words(&[top]))]);
    for _ in 0..3 {
        assert_eq!(run(&shader, &t), r);
    }
}

#[test]
fn bad_shaders_are_typed_errors() {
    let storage = "@group(0) @binding(0) var<storage, read_write> a: array<atomic<u32>>;\n";
    let cases: &[(&str, &str, &str)] = &[
        ("fn main( {", "main", "parse"),
        (
            "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
            "main",
            "parse",
        ),
        (
            "@compute @workgroup_size(1) fn main() { var x = 1u; x = 2u; }",
            "other",
            "no compute entry point `other`",
        ),
        (
            "@group(1) @binding(0) var<storage, read_write> a: array<u32>;\n\
             @compute @workgroup_size(1) fn main() { a[0] = 1u; }",
            "main",
            "@group(1)",
        ),
        (
            "@group(0) @binding(0) var t: texture_2d<f32>;\n\
             @compute @workgroup_size(1) fn main() { _ = textureLoad(t, vec2(0, 0), 0); }",
            "main",
            "storage and uniform buffers",
        ),
        (
            "override n: u32 = 4u;\n\
             @group(0) @binding(0) var<storage, read_write> a: array<u32>;\n\
             @compute @workgroup_size(1) fn main() { a[0] = n; }",
            "main",
            "override",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ _ = atomicExchange(&a[0], 1u); }}"
            ),
            "main",
            "atomicExchange",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ \
                 _ = atomicCompareExchangeWeak(&a[0], 0u, 1u); }}"
            ),
            "main",
            "atomicCompareExchangeWeak",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ \
                 let old = atomicAdd(&a[0], 1u); atomicAdd(&a[old + 1u], 1u); }}"
            ),
            "main",
            "returned value is used",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ \
                 let v = atomicLoad(&a[0]); atomicAdd(&a[1], v); }}"
            ),
            "main",
            "atomicLoad",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ atomicStore(&a[0], 5u); }}"
            ),
            "main",
            "atomicStore",
        ),
        (
            &format!(
                "{storage}@compute @workgroup_size(1) fn main() {{ \
                 atomicAdd(&a[0], 1u); atomicMax(&a[1], 7u); }}"
            ),
            "main",
            "atomicAdd/atomicSub and atomicMax on `a`",
        ),
        (
            &format!(
                "{storage}fn bump() {{ atomicOr(&a[2], 1u); }}\n\
                 @compute @workgroup_size(1) fn main() {{ atomicAnd(&a[1], 6u); bump(); }}"
            ),
            "main",
            "atomicOr and atomicAnd on `a`",
        ),
        (
            "@group(0) @binding(0) var<storage, read_write> a: array<u32>;\n\
             @compute @workgroup_size(64) fn main(@builtin(subgroup_invocation_id) s: u32) \
             { a[s] = subgroupAdd(s); }",
            "main",
            "",
        ),
    ];
    for (source, entry, message) in cases {
        let err = admit(source, entry).expect_err(source);
        let text = err.to_string();
        assert!(
            matches!(
                err,
                GpuError::Parse(_) | GpuError::Invalid(_) | GpuError::Refused(_)
            ),
            "{source}: {err:?}"
        );
        assert!(text.contains(message), "{source}: {text}");
    }
}

#[test]
fn tasks_that_do_not_fit_their_shader_are_refused_and_the_device_still_works() {
    let shader = admit(MATMUL, "main").unwrap();
    let (good, _) = matmul_task(1 << 40);
    let mut cases = Vec::new();
    let mut missing = good.clone();
    missing.buffers.pop();
    cases.push(("a missing buffer", missing));
    let mut extra = good.clone();
    extra.buffers.push(input(7, vec![0; 16]));
    cases.push(("a buffer the shader does not use", extra));
    let mut twice = good.clone();
    twice.buffers[3].binding = 2;
    cases.push(("a binding twice", twice));
    let mut odd = good.clone();
    odd.buffers[1].bytes.push(0);
    cases.push(("a size not a multiple of 4", odd));
    let mut empty = good.clone();
    empty.buffers[1].bytes.clear();
    cases.push(("an empty buffer", empty));
    let mut read_only_output = good.clone();
    read_only_output.buffers[1].output = true;
    cases.push(("an output the shader cannot write", read_only_output));
    let mut zero = good.clone();
    zero.workgroups = [0, 1, 1];
    cases.push(("no workgroups", zero));
    let mut wide = good.clone();
    wide.workgroups = [u32::MAX, 1, 1];
    cases.push(("too many workgroups", wide));
    let mut big = good.clone();
    big.max_bytes = 1024;
    cases.push(("more memory than the task allows", big));
    for (what, t) in cases {
        match gpu().run(&shader, &t) {
            Err(GpuError::InvalidTask(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
    }
    assert_eq!(run(&shader, &good).outcome, GpuOutcome::Completed);
}

/// Runs in a child process (see the next test): prints the matrix product's report.
#[test]
#[ignore = "run in a child process by two_processes_agree_on_output_and_fuel"]
fn child_prints_a_report() {
    let shader = admit(MATMUL, "main").unwrap();
    let (t, _) = matmul_task(1 << 40);
    let r = run(&shader, &t);
    println!(
        "REPORT {:?} {} {}",
        r.outcome,
        r.fuel,
        blake3::hash(&r.outputs[0].1)
    );
}

#[test]
fn two_processes_agree_on_output_and_fuel() {
    let shader = admit(MATMUL, "main").unwrap();
    let (t, _) = matmul_task(1 << 40);
    let r = run(&shader, &t);
    let here = format!(
        "REPORT {:?} {} {}",
        r.outcome,
        r.fuel,
        blake3::hash(&r.outputs[0].1)
    );
    for _ in 0..2 {
        let child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_prints_a_report",
                "--ignored",
                "--nocapture",
            ])
            .output()
            .unwrap();
        assert!(child.status.success());
        let stdout = String::from_utf8_lossy(&child.stdout);
        let line = stdout.lines().find(|l| l.starts_with("REPORT")).unwrap();
        assert_eq!(line, here);
    }
}

const SHA256_SEARCH: &str = include_str!("../../../guests/gpu/sha256-search.wgsl");

/// The search's buffers: the header, the first nonce, nonces per invocation and the target.
fn search_buffers(header: &[u32; 12], start: u32, per: u32, target: u32) -> Vec<TaskBuffer> {
    let mut search = header.to_vec();
    search.extend([start, per, target]);
    vec![
        input(0, words(&search)),
        TaskBuffer {
            binding: 1,
            bytes: words(&[u32::MAX, u32::MAX]),
            output: true,
        },
        output(2, 4),
    ]
}

#[test]
fn the_hash_search_finds_what_sha256_finds() {
    use sha2::Digest as _;
    let header: [u32; 12] =
        std::array::from_fn(|i| (i as u32).wrapping_mul(0x9e3779b9) ^ 0x5bd1e995);
    let (start, per, groups, target) = (1_000_000u32, 16u32, 8u32, 0x0100_0000u32);
    let shader = admit(SHA256_SEARCH, "main").unwrap();
    let t = task(
        [groups, 1, 1],
        search_buffers(&header, start, per, target),
        1 << 40,
    );
    let r = run(&shader, &t);
    assert_eq!(r.outcome, GpuOutcome::Completed);

    let (mut count, mut first, mut best) = (0u32, u32::MAX, u32::MAX);
    for nonce in start..start + groups * 64 * per {
        let mut message: Vec<u8> = header.iter().flat_map(|w| w.to_be_bytes()).collect();
        message.extend(nonce.to_be_bytes());
        let digest = sha2::Sha256::digest(&message);
        let word = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        best = best.min(word);
        if word < target {
            count += 1;
            first = first.min(nonce);
        }
    }
    assert!(count > 0, "the target is loose enough to find some");
    assert_eq!(
        r.outputs,
        vec![(1, words(&[first, best])), (2, words(&[count]))]
    );
    assert_eq!(run(&shader, &t), r);
}

const MLP: &str = include_str!("../../../guests/gpu/mlp.wgsl");

/// Digits 0 to 9 in a 5x7 font, a row per string.
const FONT: [[&str; 7]; 10] = [
    [
        "01110", "10001", "10011", "10101", "11001", "10001", "01110",
    ],
    [
        "00100", "01100", "00100", "00100", "00100", "00100", "01110",
    ],
    [
        "01110", "10001", "00001", "00010", "00100", "01000", "11111",
    ],
    [
        "11111", "00010", "00100", "00010", "00001", "10001", "01110",
    ],
    [
        "00010", "00110", "01010", "10010", "11111", "00010", "00010",
    ],
    [
        "11111", "10000", "11110", "00001", "00001", "10001", "01110",
    ],
    [
        "00110", "01000", "10000", "11110", "10001", "10001", "01110",
    ],
    [
        "11111", "00001", "00010", "00100", "01000", "01000", "01000",
    ],
    [
        "01110", "10001", "10001", "01110", "10001", "10001", "01110",
    ],
    [
        "01110", "10001", "10001", "01111", "00001", "00010", "01100",
    ],
];

/// Digit `d` as a 28x28 image (the font scaled 4x, 4 pixels from the left), 1.0 on, 0.0 off.
fn glyph(d: usize) -> Vec<f32> {
    let mut image = vec![0f32; 784];
    for (row, bits) in FONT[d].iter().enumerate() {
        for (col, bit) in bits.bytes().enumerate() {
            if bit == b'1' {
                for dy in 0..4 {
                    for dx in 0..4 {
                        image[(row * 4 + dy) * 28 + 4 + col * 4 + dx] = 1.0;
                    }
                }
            }
        }
    }
    image
}

/// A deterministic value in [-1, 1) from `i`.
fn noise(i: usize) -> f32 {
    let x = (i as u32).wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x5bd1_e995;
    (x >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// A template-matching network: hidden unit d (< 10) scores how well an image matches digit d
/// (+0.1 per pixel on in both, -0.1 per pixel on only in the image), the other 54 are noise held
/// off by their bias; output c reads unit c (plus a little noise from the others).
fn mlp_weights() -> Vec<f32> {
    let mut w = Vec::new();
    for j in 0..64 {
        let template = (j < 10).then(|| glyph(j));
        for i in 0..784 {
            w.push(match &template {
                Some(t) => 0.2 * t[i] - 0.1,
                None => 0.01 * noise(j * 784 + i),
            });
        }
    }
    w.extend((0..64).map(|j| if j < 10 { 0.0 } else { -1.0 }));
    for c in 0..10 {
        w.extend((0..64).map(|h| {
            if h == c {
                1.0
            } else {
                0.001 * noise(100_000 + c * 64 + h)
            }
        }));
    }
    w.extend([0.0; 10]);
    w
}

/// The same network on the CPU, in the shader's order of sums.
fn mlp_cpu(w: &[f32], image: &[f32]) -> Vec<f32> {
    let (b1, w2) = (64 * 784, 64 * 784 + 64);
    let b2 = w2 + 640;
    let hidden: Vec<f32> = (0..64)
        .map(|j| {
            let mut sum = w[b1 + j];
            for i in 0..784 {
                sum += w[j * 784 + i] * image[i];
            }
            sum.max(0.0)
        })
        .collect();
    (0..10)
        .map(|c| {
            let mut logit = w[b2 + c];
            for h in 0..64 {
                logit += w[w2 + c * 64 + h] * hidden[h];
            }
            logit
        })
        .collect()
}

#[test]
fn a_perceptron_classifies_the_digits_it_was_given() {
    let weights = mlp_weights();
    // Each digit with 3% of its pixels flipped.
    let images: Vec<Vec<f32>> = (0..10)
        .map(|d| {
            let mut image = glyph(d);
            for (i, p) in image.iter_mut().enumerate() {
                if noise(7 * i + d * 1000) > 0.94 {
                    *p = 1.0 - *p;
                }
            }
            image
        })
        .collect();
    let shader = admit(MLP, "main").unwrap();
    let t = task(
        [10, 1, 1],
        vec![
            input(0, floats(&weights)),
            input(1, floats(&images.concat())),
            output(2, 10 * 10 * 4),
            output(3, 10 * 4),
        ],
        1 << 40,
    );
    let r = run(&shader, &t);
    assert_eq!(r.outcome, GpuOutcome::Completed);
    assert_eq!(r.outputs[1], (3, words(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9])));
    let logits: Vec<f32> = r.outputs[0]
        .1
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (d, image) in images.iter().enumerate() {
        let cpu = mlp_cpu(&weights, image);
        for c in 0..10 {
            let gpu = logits[d * 10 + c];
            assert!(
                (gpu - cpu[c]).abs() <= 1e-4 * cpu[c].abs().max(1.0),
                "{d}/{c}: {gpu} vs {cpu:?}"
            );
        }
    }
    // Bit-identical on this device, run after run.
    assert_eq!(run(&shader, &t), r);
}

const MANDELBROT: &str = include_str!("../../../guests/gpu/mandelbrot.wgsl");

/// The pixel `mandelbrot.wgsl` computes, on the CPU.
fn mandelbrot_cpu(left: f32, top: f32, step: f32, x: u32, y: u32, max_iter: u32) -> u32 {
    let (cr, ci) = (left + x as f32 * step, top - y as f32 * step);
    let (mut zr, mut zi, mut n) = (0f32, 0f32, 0u32);
    while n < max_iter && zr * zr + zi * zi <= 4.0 {
        let t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        n += 1;
    }
    if n == max_iter {
        return 0xff00_0000;
    }
    0xff00_0000 | ((n * 9) % 256) | (((n * 5 + 64) % 256) << 8) | ((255 - (n * 3) % 256) << 16)
}

#[test]
fn an_image_rendered_tile_by_tile_assembles_into_a_png() {
    let shader = admit(MANDELBROT, "main").unwrap();
    let (width, height, tiles, max_iter) = (160u32, 120u32, 3u32, 200u32);
    let (left, top, step) = (-2.2f32, 1.2f32, 3.2f32 / 160.0);
    let rows = height / tiles;
    let mut rgba = Vec::new();
    for tile in 0..tiles {
        let mut view = floats(&[left, top, step]);
        view.extend(words(&[width, tile * rows, rows, max_iter]));
        let t = task(
            [width.div_ceil(16), rows.div_ceil(16), 1],
            vec![input(0, view), output(1, (width * rows * 4) as usize)],
            1 << 40,
        );
        let r = run(&shader, &t);
        assert_eq!(r.outcome, GpuOutcome::Completed);
        assert_eq!(run(&shader, &t), r, "tile {tile} repeats bit for bit");
        rgba.extend_from_slice(&r.outputs[0].1);
    }
    // Against the CPU: the same pixels but where a fused multiply-add moved a point across the
    // set's edge (on this device, none or a handful).
    let differ = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let i = ((y * width + x) * 4) as usize;
            let gpu = u32::from_le_bytes(rgba[i..i + 4].try_into().unwrap());
            gpu != mandelbrot_cpu(left, top, step, x, y, max_iter)
        })
        .count();
    eprintln!(
        "{differ} of {} pixels differ from the CPU's",
        width * height
    );
    assert!(
        differ * 100 < (width * height) as usize,
        "{differ} pixels differ"
    );
    let mut png = Vec::new();
    use image::ImageEncoder as _;
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(&rgba, width, height, image::ColorType::Rgba8)
        .unwrap();
    let decoded = image::load_from_memory(&png).unwrap().to_rgba8();
    assert_eq!((decoded.width(), decoded.height()), (width, height));
    assert_eq!(decoded.into_raw(), rgba);
}

#[test]
fn a_device_class_has_one_fingerprint_per_challenge() {
    let first = gpu::fingerprint(gpu(), 7).unwrap();
    assert_eq!(gpu::fingerprint(gpu(), 7).unwrap(), first);
    let other = Gpu::open().unwrap();
    assert_eq!(other.adapter().class(), gpu().adapter().class());
    assert_eq!(gpu::fingerprint(&other, 7).unwrap(), first);
    assert_ne!(gpu::fingerprint(gpu(), 8).unwrap(), first);
}

#[test]
fn shaders_without_floats_are_marked_integer_only() {
    assert!(admit(SHA256_SEARCH, "main").unwrap().integer_only);
    assert!(admit(LOOPS, "main").unwrap().integer_only);
    assert!(!admit(MATMUL, "main").unwrap().integer_only);
    assert!(!admit(MANDELBROT, "main").unwrap().integer_only);
    // A float only in a conversion still makes the shader a float one.
    let cast = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;\n\
                @compute @workgroup_size(1) fn main() { a[0] = u32(f32(a[1]) * 0.5); }";
    assert!(!admit(cast, "main").unwrap().integer_only);
}

#[test]
fn a_shader_sees_only_its_own_buffers() {
    // Reads far past its input, at indices the shader computes: wgpu's bounds checks keep every
    // access inside the buffer, so the secret in the other buffer never shows.
    let source = "@group(0) @binding(0) var<storage, read> a: array<u32>;\n\
                  @group(0) @binding(1) var<storage, read> secret: array<u32>;\n\
                  @group(0) @binding(2) var<storage, read_write> out: array<u32>;\n\
                  @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n\
                      out[id.x] = a[id.x * 4096u + arrayLength(&a)] ^ secret[0] ^ secret[0];\n\
                      out[id.x + 64u] = a[0xffffffffu - id.x];\n\
                  }";
    let shader = admit(source, "main").unwrap();
    let secret = 0x005e_c2e7_u32;
    let r = run(
        &shader,
        &task(
            [1, 1, 1],
            vec![
                input(0, words(&[1, 2, 3, 4])),
                input(1, words(&[secret; 1024])),
                output(2, 128 * 4),
            ],
            1 << 30,
        ),
    );
    assert_eq!(r.outcome, GpuOutcome::Completed);
    let out = &r.outputs[0].1;
    assert!(
        out.chunks_exact(4)
            .all(|w| [0, 1, 2, 3, 4].contains(&u32::from_le_bytes(w.try_into().unwrap()))),
        "{out:?}"
    );
    // Writes past the end of its output change nothing else either.
    let source = "@group(0) @binding(0) var<storage, read_write> a: array<u32>;\n\
                  @group(0) @binding(1) var<storage, read_write> b: array<u32>;\n\
                  @compute @workgroup_size(1) fn main() {\n\
                      for (var i = 0u; i < 64u; i++) { a[arrayLength(&a) + i] = 0xdeadu; }\n\
                      if (b[0] == 12345u) { a[0] = 1u; }\n\
                  }";
    let shader = admit(source, "main").unwrap();
    let r = run(
        &shader,
        &task(
            [1, 1, 1],
            vec![
                output(0, 16),
                TaskBuffer {
                    binding: 1,
                    bytes: words(&[7; 16]),
                    output: true,
                },
            ],
            1 << 30,
        ),
    );
    assert_eq!(r.outputs[1], (1, words(&[7; 16])));
}

#[test]
fn a_shader_the_device_cannot_hold_is_a_typed_error() {
    // More workgroup memory than this device gives (naga's validation has no device).
    let words = gpu().adapter().max_workgroup_bytes / 4 + 1;
    let source = format!(
        "var<workgroup> big: array<u32, {words}>;\n\
         @group(0) @binding(0) var<storage, read_write> a: array<u32>;\n\
         @compute @workgroup_size(1) fn main() {{ big[a[0]] = 1u; a[1] = big[a[2]]; }}"
    );
    let shader = admit(&source, "main").unwrap();
    match gpu().run(&shader, &task([1, 1, 1], vec![output(0, 16)], 1 << 30)) {
        Err(GpuError::InvalidTask(m)) => assert!(m.contains("workgroup memory"), "{m}"),
        other => panic!("{other:?}"),
    }
    // The device still runs the next task.
    let (t, _) = matmul_task(1 << 40);
    assert_eq!(
        run(&admit(MATMUL, "main").unwrap(), &t).outcome,
        GpuOutcome::Completed
    );
}

#[test]
fn the_adapters_are_listed_without_opening_one() {
    let all = gpu::adapters();
    assert!(!all.is_empty());
    // The device the tests run on is the best one listed.
    assert_eq!(all[0].class(), gpu().adapter().class());
    // Mesa's software driver is not a GPU (a provider does not advertise it as one).
    for a in &all {
        if a.driver == "llvmpipe" {
            assert!(!a.is_hardware(), "{a:?}");
        }
    }
}

/// Random structured shaders: nested `for`, `loop` and `while` loops, `if`s, `switch`es (whose
/// `break` leaves the switch, not the loop), `break`, `continue`, early `return`s and calls.
struct Program {
    seed: u64,
    names: u32,
}

impl Program {
    fn next(&mut self, n: u32) -> u32 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed % u64::from(n)) as u32
    }

    fn name(&mut self) -> String {
        self.names += 1;
        format!("v{}", self.names)
    }

    fn condition(&mut self) -> String {
        let mask = [1, 3, 7][self.next(3) as usize];
        format!("(acc & {mask}u) == {}u", self.next(mask + 1))
    }

    fn block(&mut self, depth: u32, in_loop: bool, in_main: bool) -> String {
        let mut out = String::new();
        for _ in 0..1 + self.next(3) {
            out += &self.statement(depth, in_loop, in_main);
        }
        out
    }

    fn statement(&mut self, depth: u32, in_loop: bool, in_main: bool) -> String {
        let leaf = depth == 0;
        match self.next(if leaf { 3 } else { 10 }) {
            0 => format!("acc = acc * 3u + {}u;\n", self.next(100)),
            1 => "acc = acc ^ (acc >> 5u);\n".to_owned(),
            2 if in_main => "acc = helper(acc);\n".to_owned(),
            2 => "acc = acc + 1u;\n".to_owned(),
            3 => format!(
                "if ({}) {{\n{}}} else {{\n{}}}\n",
                self.condition(),
                self.block(depth - 1, in_loop, in_main),
                self.block(depth - 1, in_loop, in_main)
            ),
            4 => {
                let i = self.name();
                format!(
                    "for (var {i} = 0u; {i} < {}u; {i}++) {{\n{}}}\n",
                    1 + self.next(5),
                    self.block(depth - 1, true, in_main)
                )
            }
            5 => {
                let c = self.name();
                format!(
                    "var {c} = 0u;\nloop {{\n{c}++;\nif ({c} > {}u) {{ break; }}\n{}}}\n",
                    self.next(5),
                    self.block(depth - 1, true, in_main)
                )
            }
            6 => {
                let c = self.name();
                format!(
                    "var {c} = 0u;\nwhile ({c} < {}u && (acc % 7u) != 3u) {{\n{c}++;\n{}}}\n",
                    1 + self.next(5),
                    self.block(depth - 1, true, in_main)
                )
            }
            7 => format!(
                "switch (acc % 3u) {{\ncase 0u: {{\n{}if ({}) {{ break; }}\nacc = acc + 5u;\n}}\n\
                 case 1u: {{\n{}}}\ndefault: {{\n{}}}\n}}\n",
                self.block(depth - 1, in_loop, in_main),
                self.condition(),
                self.block(depth - 1, in_loop, in_main),
                self.block(depth - 1, in_loop, in_main)
            ),
            8 if in_loop => format!(
                "if ({}) {{ {} }}\n",
                self.condition(),
                ["break;", "continue;"][self.next(2) as usize]
            ),
            8 if in_main => format!("if ({}) {{ out[id.x] = acc; return; }}\n", self.condition()),
            _ => format!("acc = acc + {}u;\n", self.next(10)),
        }
    }

    fn source(seed: u64) -> String {
        let mut p = Program {
            seed: seed | 1,
            names: 0,
        };
        let helper = p.block(2, false, false);
        let main = p.block(3, false, true);
        format!(
            "@group(0) @binding(0) var<storage, read> inp: array<u32>;\n\
             @group(0) @binding(1) var<storage, read_write> out: array<u32>;\n\
             fn helper(x: u32) -> u32 {{\nvar acc = x;\n{helper}return acc;\n}}\n\
             @compute @workgroup_size(4)\n\
             fn main(@builtin(global_invocation_id) id: vec3<u32>) {{\n\
             var acc = id.x * 2654435761u + inp[id.x % 4u];\n{main}out[id.x] = acc;\n}}\n"
        )
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Metering changes nothing a shader computes, counts the same every run, and stops a short
    /// run at the same place every time.
    #[test]
    fn metering_keeps_what_random_shaders_compute(seed in proptest::prelude::any::<u64>()) {
        let source = Program::source(seed);
        let plain = gpu::baseline::admit_unmetered(&source, "main").expect(&source);
        let metered = admit(&source, "main").expect(&source);
        let inputs = words(&[seed as u32, (seed >> 32) as u32, 7, 11]);
        let t = |fuel| task([2, 1, 1], vec![input(0, inputs.clone()), output(1, 32)], fuel);
        let expected = run(&plain, &t(1 << 40));
        let full = run(&metered, &t(1 << 40));
        proptest::prop_assert_eq!(full.outcome, GpuOutcome::Completed, "{}", source);
        proptest::prop_assert_eq!(&full.outputs, &expected.outputs, "{}", source);
        proptest::prop_assert_eq!(run(&metered, &t(1 << 40)), full.clone());
        // Half the fuel each invocation needed at most: some run out, where they stop repeats.
        let short = t(full.fuel / 2);
        let stopped = run(&metered, &short);
        proptest::prop_assert_eq!(run(&metered, &short), stopped.clone(), "{}", source);
        proptest::prop_assert_eq!(stopped.outcome, GpuOutcome::OutOfFuel, "{}", source);
    }
}

/// A lost device (a driver reset after a watchdog timeout, here `Gpu::destroy`) says so, fails
/// every later run with a typed error and never a panic, and a device opened again runs the
/// same task to the same bytes and fuel.
#[test]
fn a_lost_device_says_so_and_a_new_one_runs_the_task_alike() {
    let (t, _) = matmul_task(1 << 40);
    let shader = admit(MATMUL, "main").unwrap();
    let before = run(&shader, &t);
    let lost = Gpu::open().unwrap();
    assert!(!lost.is_lost());
    assert_eq!(lost.run(&shader, &t).unwrap(), before);
    lost.destroy();
    // Poll once so that the lost callback runs, as it would after a real loss.
    let _ = lost.run(&shader, &t);
    for _ in 0..100 {
        if lost.is_lost() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        lost.is_lost(),
        "destroying the device fired no lost callback"
    );
    for _ in 0..2 {
        match lost.run(&shader, &t) {
            Err(GpuError::Device(why)) => assert!(why.contains("lost"), "{why}"),
            other => panic!("a lost device ran a task: {other:?}"),
        }
    }
    let again = Gpu::open().unwrap();
    assert_eq!(again.run(&shader, &t).unwrap(), before);
}

const COPY: &str = r#"
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&dst)) {
        dst[id.x] = src[id.x];
    }
}
"#;

/// Writes nothing unless told to (its flag is never set here): what it returns is what its
/// buffers held before it ran.
const PEEK: &str = r#"
@group(0) @binding(0) var<storage, read> flag: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (flag[id.x] == 0xdeadbeefu) {
        dst[id.x] = 1u;
    }
}
"#;

/// Nothing of one task reaches the next: a task that writes nothing gets back the zeros it
/// declared, never the secret the task before it held in buffers of the same size (a guard for
/// any reuse of device memory between tasks: a pool of buffers was tried and measured no faster
/// on lavapipe, so buffers are created per run).
#[test]
fn a_reused_buffer_carries_nothing_of_the_task_before() {
    // A size no other test uses: were buffers reused, this test's would go back and forth.
    const N: usize = 777 * 64;
    let copy = admit(COPY, "main").unwrap();
    let peek = admit(PEEK, "main").unwrap();
    let secret: Vec<u32> = (0..N as u32).map(|i| i ^ 0x5ec2_e700).collect();
    for _ in 0..3 {
        let leak = run(
            &copy,
            &task(
                [777, 1, 1],
                vec![input(0, words(&secret)), output(1, N * 4)],
                1 << 30,
            ),
        );
        assert_eq!(leak.outputs, vec![(1, words(&secret))]);
        let after = run(
            &peek,
            &task(
                [777, 1, 1],
                vec![input(0, vec![0; N * 4]), output(1, N * 4)],
                1 << 30,
            ),
        );
        assert_eq!(after.outcome, GpuOutcome::Completed);
        assert_eq!(after.outputs, vec![(1, vec![0; N * 4])]);
    }
}

// Shaders in GLSL and SPIR-V (the language told from the bytes): the same IR rules, the same
// results; hostile bytes are typed errors, never a panic or an overflowed stack.

const MATMUL_GLSL: &str = include_str!("../../../guests/gpu/matmul.comp");

/// `module` written as SPIR-V (little-endian words) by naga's back end.
fn spirv_of(wgsl: &str) -> Vec<u8> {
    let module = naga::front::wgsl::parse_str(wgsl).unwrap();
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap();
    let words =
        naga::back::spv::write_vec(&module, &info, &naga::back::spv::Options::default(), None)
            .unwrap();
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn a_glsl_and_a_spirv_matrix_product_compute_what_the_wgsl_one_does() {
    let wgsl = admit(MATMUL, "main").unwrap();
    let glsl = gpu::admit_bytes(MATMUL_GLSL.as_bytes(), "main").unwrap();
    let spirv = gpu::admit_bytes(&spirv_of(MATMUL), "main").unwrap();
    assert_eq!(wgsl.language, gpu::ShaderLanguage::Wgsl);
    assert_eq!(glsl.language, gpu::ShaderLanguage::Glsl);
    assert_eq!(spirv.language, gpu::ShaderLanguage::SpirV);
    // The same interface: bindings, kinds, sizes, workgroup.
    for other in [&glsl, &spirv] {
        assert_eq!(other.bindings, wgsl.bindings);
        assert_eq!(other.workgroup_size, wgsl.workgroup_size);
        assert_eq!(other.integer_only, wgsl.integer_only);
        assert_ne!(other.hash, wgsl.hash);
    }
    let (t, expected) = matmul_task(1 << 40);
    let w = run(&wgsl, &t);
    assert_eq!(w.outcome, GpuOutcome::Completed);
    assert_eq!(w.outputs, vec![(3, floats(&expected))]);
    let g = run(&glsl, &t);
    let s = run(&spirv, &t);
    for (name, r) in [("GLSL", &g), ("SPIR-V", &s)] {
        assert_eq!(r.outcome, GpuOutcome::Completed, "{name}");
        assert_eq!(r.outputs, w.outputs, "{name}");
        assert!(r.fuel > 0, "{name}");
        // Fuel counts naga's IR, which each front end shapes its own way (GLSL's and SPIR-V's
        // entry points copy their builtins into globals and call the body as a function): the
        // same computation, a count of its own, repeatable.
        assert_eq!(run(if name == "GLSL" { &glsl } else { &spirv }, &t), *r);
    }
    println!("fuel: WGSL {}, GLSL {}, SPIR-V {}", w.fuel, g.fuel, s.fuel);
    // The fuel bounds a GLSL run as it does a WGSL one: half of it runs out.
    let (short, _) = matmul_task(g.fuel / 2);
    assert_eq!(run(&glsl, &short).outcome, GpuOutcome::OutOfFuel);
}

/// A SPIR-V module of one compute entry point `main` whose body is `depth` selection
/// constructs, each nested in the one before (hand-assembled: naga's back end recurses as deep).
fn nested_spirv(depth: u32) -> Vec<u8> {
    let op = |code: u32, operands: &[u32]| {
        let mut v = vec![((operands.len() as u32 + 1) << 16) | code];
        v.extend_from_slice(operands);
        v
    };
    let (void, func, boolean, yes, main) = (1, 2, 3, 4, 5);
    let label = |i: u32| 6 + i;
    let merge = |i: u32| 6 + depth + 1 + i;
    let mut w = vec![0x0723_0203, 0x0001_0000, 0, 6 + 2 * depth + 2, 0];
    w.extend(op(17, &[1])); // OpCapability Shader
    w.extend(op(14, &[0, 1])); // OpMemoryModel Logical GLSL450
    w.extend(op(15, &[5, main, u32::from_le_bytes(*b"main"), 0])); // OpEntryPoint GLCompute
    w.extend(op(16, &[main, 17, 1, 1, 1])); // OpExecutionMode LocalSize 1 1 1
    w.extend(op(19, &[void])); // OpTypeVoid
    w.extend(op(33, &[func, void])); // OpTypeFunction
    w.extend(op(20, &[boolean])); // OpTypeBool
    w.extend(op(41, &[boolean, yes])); // OpConstantTrue
    w.extend(op(54, &[void, main, 0, func])); // OpFunction
    for i in 0..depth {
        w.extend(op(248, &[label(i)])); // OpLabel
        w.extend(op(247, &[merge(i), 0])); // OpSelectionMerge
        w.extend(op(250, &[yes, label(i + 1), merge(i)])); // OpBranchConditional
    }
    w.extend(op(248, &[label(depth)]));
    for i in (0..depth).rev() {
        w.extend(op(249, &[merge(i)])); // OpBranch
        w.extend(op(248, &[merge(i)]));
    }
    w.extend(op(253, &[])); // OpReturn
    w.extend(op(56, &[])); // OpFunctionEnd
    w.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// `bytes` admitted: `Ok`, or one of the errors of a bad shader (never a panic, never the host's
/// errors).
fn admitted_or_typed(bytes: &[u8]) -> Result<Shader, String> {
    match gpu::admit_bytes(bytes, "main") {
        Ok(shader) => Ok(shader),
        Err(e @ (GpuError::Parse(_) | GpuError::Invalid(_) | GpuError::Refused(_))) => {
            Err(e.to_string())
        }
        Err(e) => panic!("not a shader's error: {e:?}"),
    }
}

#[test]
fn hostile_glsl_and_spirv_are_typed_errors() {
    let spirv = spirv_of(MATMUL);
    let glsl = |body: &str| {
        format!(
            "#version 450\nlayout(local_size_x = 4) in;\n\
             layout(std430, set = 0, binding = 0) buffer O {{ uint o[]; }};\n{body}"
        )
    };
    let mut big_endian: Vec<u8> = spirv
        .chunks_exact(4)
        .flat_map(|w| [w[3], w[2], w[1], w[0]])
        .collect();
    big_endian.truncate(64);
    let mut garbage = spirv[..4].to_vec();
    let mut x = 0x9e37_79b9u32;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        garbage.extend(x.to_le_bytes());
    }
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated SPIR-V",
            spirv[..spirv.len() / 2 / 4 * 4].to_vec(),
            "parse",
        ),
        (
            "SPIR-V of a part word",
            spirv[..spirv.len() - 3].to_vec(),
            "whole number",
        ),
        ("SPIR-V: the magic alone", spirv[..4].to_vec(), "parse"),
        ("big-endian SPIR-V", big_endian, "big-endian"),
        ("garbage after the magic", garbage, "parse"),
        (
            "non-UTF-8 WGSL",
            vec![0xff, 0xfe, 0x00, 0x01, b'f', b'n'],
            "UTF-8",
        ),
        (
            "GLSL with a syntax error",
            glsl("void main() { o[0] = ; }").into_bytes(),
            "parse",
        ),
        (
            "GLSL with a texture and a sampler",
            glsl(
                "layout(set = 0, binding = 1) uniform texture2D t;\n\
                 layout(set = 0, binding = 2) uniform sampler s;\n\
                 void main() { o[0] = uint(texelFetch(sampler2D(t, s), ivec2(0), 0).x); }",
            )
            .into_bytes(),
            "storage and uniform buffers",
        ),
        (
            "GLSL with a storage image",
            glsl(
                "layout(set = 0, binding = 1, r32f) uniform image2D img;\n\
                 void main() { imageStore(img, ivec2(0), vec4(1.0)); }",
            )
            .into_bytes(),
            "storage and uniform buffers",
        ),
        (
            "GLSL with a second descriptor set",
            glsl(
                "layout(std430, set = 1, binding = 0) buffer P { uint p[]; };\n\
                 void main() { o[0] = p[0]; }",
            )
            .into_bytes(),
            "@group(1) (GLSL: set = 1)",
        ),
        (
            "GLSL with push constants",
            glsl("layout(push_constant) uniform P { uint k; } pc;\nvoid main() { o[0] = pc.k; }")
                .into_bytes(),
            "invalid",
        ),
        (
            "GLSL that recurses (naga's validator would panic)",
            glsl("void f();\nvoid f() { f(); }\nvoid main() { f(); }").into_bytes(),
            "recursion",
        ),
        (
            "GLSL with a macro",
            glsl("#define N 4u\nvoid main() { o[0] = N; }").into_bytes(),
            "#define",
        ),
        (
            "GLSL with a line continuation",
            glsl("void main() { o[0] = \\\n 1u; }").into_bytes(),
            "continuation",
        ),
        (
            "GLSL nested past the limit",
            glsl(&format!(
                "void main() {{ o[0] = {}1u{}; }}",
                "(".repeat(3000),
                ")".repeat(3000)
            ))
            .into_bytes(),
            "nesting too deep",
        ),
        (
            "GLSL: a long chain of unary operators",
            glsl(&format!(
                "void main() {{ int x = {}1; o[0] = uint(x); }}",
                "-".repeat(5000)
            ))
            .into_bytes(),
            "nesting too deep",
        ),
        (
            "GLSL: an else-if chain past the limit",
            glsl(&format!(
                "void main() {{ if (o[1] == 0u) o[0] = 1u; {} }}",
                "else if (o[1] == 1u) o[0] = 1u; ".repeat(600)
            ))
            .into_bytes(),
            "nesting too deep",
        ),
        (
            "GLSL without a compute entry point",
            b"#version 450\nlayout(std430, binding = 0) buffer O { uint o[]; };\n".to_vec(),
            "parse",
        ),
        (
            "SPIR-V nested 2,000 deep",
            nested_spirv(2000),
            "nested more than 256",
        ),
        (
            "SPIR-V of too many branches",
            nested_spirv(3000),
            "structured branches",
        ),
    ];
    for (what, bytes, says) in cases {
        let err = admitted_or_typed(&bytes)
            .err()
            .unwrap_or_else(|| panic!("{what}: admitted"));
        assert!(err.contains(says), "{what}: {err}");
    }
    // Nesting within the limits is admitted (and does not overflow the admission's stack).
    admitted_or_typed(&nested_spirv(200)).expect("SPIR-V nested 200 deep");
    let deep = glsl(&format!(
        "void main() {{ o[0] = {}1u{}; }}",
        "(".repeat(300),
        ")".repeat(300)
    ));
    admitted_or_typed(deep.as_bytes()).expect("GLSL nested 300 deep");

    // Every prefix and many one-byte changes of a SPIR-V module: a shader or a typed error.
    for end in (0..spirv.len()).step_by(52) {
        let _ = admitted_or_typed(&spirv[..end]);
    }
    let mut x = 1u32;
    for _ in 0..300 {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let mut bytes = spirv.clone();
        let at = 20 + (x >> 8) as usize % (bytes.len() - 20);
        bytes[at] = (x >> 24) as u8;
        let _ = admitted_or_typed(&bytes);
    }
}
