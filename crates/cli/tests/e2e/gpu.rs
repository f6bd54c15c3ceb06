//! Rules 23: GPU jobs through real processes. Providers run with `--gpu-software` (Mesa's
//! lavapipe, a real Vulkan device on the CPU, which `.ci/run` installs): the examples a user
//! submits run on them, verified by replicas as any job is, and never on a provider without a
//! GPU; a shader or a declaration the GPU sandbox would refuse is refused at submission with a
//! typed 4xx and changes nothing.

use crate::support::*;
use api::Identity;
use bytes::Bytes;
use engine::{Action, GpuBuffer, GpuFill, GpuJob, InputFile, JobSpec, Limits, TaskSpec};
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
}

fn words(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|w| u32::from_le_bytes(w.try_into().unwrap()))
        .collect()
}

/// What `examples/gpu-hash.toml` must find, task by task, as `sha2` computes it: the least
/// nonce below the bound, the least first word, the count.
fn expected_search() -> Vec<u32> {
    use sha2::Digest as _;
    let mut out = Vec::new();
    for task in 0..4u32 {
        let params = std::fs::read(example(&format!("data/gpu/search-{task}.bin"))).unwrap();
        let params = words(&params);
        let header: Vec<u8> = params[..12].iter().flat_map(|w| w.to_be_bytes()).collect();
        let (start, per, bound) = (params[12], params[13], params[14]);
        let (mut first, mut best, mut count) = (u32::MAX, u32::MAX, 0u32);
        for nonce in start..start + 16 * 64 * per {
            let digest = sha2::Sha256::digest([&header[..], &nonce.to_be_bytes()].concat());
            let word = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
            best = best.min(word);
            if word < bound {
                count += 1;
                first = first.min(nonce);
            }
        }
        out.extend([first, best, count]);
    }
    out
}

#[test]
fn the_gpu_examples_run_on_gpu_providers_only_verified_by_replicas() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let cpu = w.provider_with(&c, 2, &["--no-gpu"]);
    let gpus: Vec<_> = (0..3)
        .map(|_| {
            w.provider_with(
                &c,
                1,
                &["--gpu-software", "--price", "3", "--gpu-price", "1"],
            )
        })
        .collect();
    let declared = c.http.provider(gpus[0].id).unwrap().spec.gpu.unwrap();
    assert!(declared.contains("Vulkan"), "{declared}");
    assert_eq!(c.http.provider(cpu.id).unwrap().spec.gpu, None);
    // Each GPU provider measured its device and offers it (rules 23); the scheduler's speed
    // estimate for GPU jobs is that.
    let offer = c
        .http
        .provider(gpus[0].id)
        .unwrap()
        .gpu_offer
        .expect("an offer");
    assert!(
        offer.fuel_per_ms > 0 && offer.memory_bytes >= 1 << 20,
        "{offer:?}"
    );
    // The examples pay at most 1 per fuel: GPU tasks go to these providers for their GPU
    // price (1), whatever their CPU price (3).
    assert_eq!(offer.price_per_fuel, 1);
    assert_eq!(c.http.provider(cpu.id).unwrap().gpu_offer, None);
    // The same device (lavapipe here) computes the fingerprint challenge alike for every one.
    for p in &gpus[1..] {
        let other = c.http.provider(p.id).unwrap().gpu_offer.unwrap();
        assert_eq!(other.fingerprint, offer.fingerprint);
    }
    let info = w
        .cli(&[
            "provider",
            "info",
            &gpus[0].id.to_hex(),
            "--coordinator",
            &c.url,
        ])
        .ok();
    assert!(info.stdout.contains("GPU fuel/ms"), "{}", info.stdout);

    // The hash search as a user submits it (the network's adaptive verification: new
    // providers' results are confirmed by others).
    let hash = w.submit(&c.url, &example("gpu-hash.toml"));
    // The matrix products, the perceptron and the render: float shaders, so one class each.
    let matmul = w.submit(&c.url, &example("gpu-matmul.toml"));
    let mlp = w.submit(&c.url, &example("gpu-mlp.toml"));
    let render = w.submit(&c.url, &example("gpu-mandelbrot.toml"));
    // New providers' results are confirmed by replicas (until they are trusted).
    let mut replicated = false;
    for job in [hash, matmul, mlp, render] {
        let view = c.http.wait_job(job);
        assert_eq!(view.status, engine::JobStatus::Completed, "{view:?}");
        let view = c.http.job_with_tasks(job);
        assert_eq!(view.gpu_class.is_some(), job != hash, "{view:?}");
        // The map tasks (the render's reduce is a WebAssembly task: it may run anywhere).
        let maps = if job == mlp { 1 } else { 4 };
        for task in view.tasks.iter().take(maps) {
            replicated |= task.runs.len() >= 2;
            for run in &task.runs {
                assert_ne!(
                    run.provider, cpu.id,
                    "a GPU task ran without a GPU: {task:?}"
                );
            }
            assert!(task.fuel_used.unwrap() > 0);
        }
    }
    assert!(replicated, "no result was confirmed by a replica");
    // GPU fuel is paid at the providers' GPU price (each task once, split among the replicas
    // that confirmed it, rounded down).
    let view = c.http.job(hash);
    let due = u128::from(view.fuel_used);
    assert!(
        view.escrow.paid <= due && view.escrow.paid + 16 >= due,
        "paid {} for {} fuel",
        view.escrow.paid,
        view.fuel_used
    );
    assert_eq!(words(&w.results(&c.url, hash)), expected_search());
    // Each accepted GPU run's energy was reported (rules 24): modelled, the device's power
    // (a software one: every core) for the dispatch's time.
    let energy = view.energy.expect("the job's energy");
    assert_eq!(energy.unreported, 0, "{energy:?}");
    assert!(energy.runs >= 4 && energy.measured == 0, "{energy:?}");
    assert!(energy.millijoules > 0, "{energy:?}");

    // C = A x B_i, exactly: the entries are small integers.
    let read = |name: &str| -> Vec<f32> {
        std::fs::read(example(&format!("data/gpu/{name}")))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    };
    let a = read("a.bin");
    let mut want = Vec::new();
    for task in 0..4 {
        let b = read(&format!("b-{task}.bin"));
        for i in 0..64 {
            for j in 0..64 {
                let sum: f32 = (0..64).map(|k| a[i * 64 + k] * b[k * 64 + j]).sum();
                want.extend(sum.to_le_bytes());
            }
        }
    }
    assert_eq!(w.results(&c.url, matmul), want);
    let status = w
        .cli(&[
            "job",
            "status",
            &matmul.to_string(),
            "--coordinator",
            &c.url,
        ])
        .ok();
    assert!(
        status.stdout.contains(&format!(
            "float results: one GPU class, {declared}, fingerprint {}",
            &offer.fingerprint.to_hex()[..16]
        )),
        "{}",
        status.stdout
    );

    // The perceptron classifies the known digits as what they are.
    let out = w.results(&c.url, mlp);
    assert_eq!(out.len(), 440);
    assert_eq!(words(&out[400..]), (0..10).collect::<Vec<u32>>());

    // The render: a 512x512 PNG assembled by png.wasm from the GPU's tiles, the same picture
    // as the shader's f32 code on the CPU but for a few pixels (fused multiply-adds).
    let png = w.results(&c.url, render);
    let image = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
        .expect("a PNG")
        .to_rgb8();
    assert_eq!(image.dimensions(), (512, 512));
    let differ = image
        .enumerate_pixels()
        .filter(|(x, y, p)| p.0 != mandelbrot_cpu(*x, *y))
        .count();
    assert!(
        differ < 512 * 512 / 100,
        "{differ} pixels differ from the CPU's"
    );
}

/// Pixel (x, y) of `examples/gpu-mandelbrot.toml`'s image as `mandelbrot-tiles.wgsl` computes
/// it, in f32 on the CPU.
fn mandelbrot_cpu(x: u32, y: u32) -> [u8; 3] {
    let (left, top, step) = (-2.0f32, 1.25f32, 2.5f32 / 512.0);
    let (cr, ci) = (left + x as f32 * step, top - y as f32 * step);
    let (mut zr, mut zi, mut n) = (0f32, 0f32, 0u32);
    while n < 256 && zr * zr + zi * zi <= 4.0 {
        let t = zr * zr - zi * zi + cr;
        zi = 2.0 * zr * zi + ci;
        zr = t;
        n += 1;
    }
    if n >= 256 {
        return [0, 0, 0];
    }
    [
        ((n * 9) % 256) as u8,
        ((n * 5 + 64) % 256) as u8,
        (255 - (n * 3) % 256) as u8,
    ]
}

/// A GPU job spec over `shader` with one output buffer at binding 0 of `size` bytes.
fn gpu_spec(shader: engine::Hash, input: Option<engine::Hash>) -> JobSpec {
    JobSpec {
        module: shader,
        tasks: vec![TaskSpec {
            inputs: input
                .map(|hash| InputFile {
                    name: "data".into(),
                    hash,
                })
                .into_iter()
                .collect(),
            ..TaskSpec::default()
        }],
        limits: Limits {
            fuel: 1_000_000,
            memory_bytes: 1 << 20,
            wall_ms: 10_000,
        },
        deadline: coordinator::now_ms() + 600_000,
        max_price: 1,
        output: engine::OutputSource::Stdout,
        aggregate: engine::Aggregate::Concat,
        redundancy: engine::Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        },
        requirements: Default::default(),
    }
}

fn declaration(buffers: Vec<GpuBuffer>, one_class: bool) -> GpuJob {
    GpuJob {
        entry: "main".into(),
        workgroups: [1, 1, 1],
        buffers,
        one_class,
    }
}

fn out(binding: u32, size: u64) -> GpuBuffer {
    GpuBuffer {
        binding,
        fill: GpuFill::Zeroed(size),
        output: true,
    }
}

const WRITES: &str = "@group(0) @binding(0) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(4) fn main(@builtin(global_invocation_id) id: vec3<u32>) { out[id.x] = id.x * 3u; }";
const FLOATS: &str = "@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(4) fn main(@builtin(global_invocation_id) id: vec3<u32>) { out[id.x] = sqrt(f32(id.x)); }";
const READS: &str = "@group(0) @binding(0) var<storage, read> data: array<u32, 8>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1) fn main() { out[0] = data[7]; }";
const TEXTURE: &str = "@group(0) @binding(0) var t: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn main() { out[0] = textureLoad(t, vec2<i32>(0, 0), 0).x; }";

#[test]
fn bad_shaders_and_declarations_are_refused_at_submission_and_change_nothing() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let me = Identity::generate();
    w.block_on(c.http.client.action(&me, Action::Faucet))
        .expect("the dev faucet");
    let put = |bytes: &[u8]| {
        w.block_on(c.http.client.put_blob(&me, Bytes::from(bytes.to_vec())))
            .expect("uploading")
    };
    let writes = put(WRITES.as_bytes());
    let floats = put(FLOATS.as_bytes());
    let reads = put(READS.as_bytes());
    let texture = put(TEXTURE.as_bytes());
    let garbage = put(b"fn main( { this is not WGSL");
    let not_text = put(&[0xff, 0xfe, 0x00, 0x01]);
    let short = put(&[1, 2, 3, 4]);
    let submit = |spec: JobSpec, gpu: GpuJob| Action::SubmitGpuJob {
        spec,
        storage: None,
        gpu,
    };
    let table: Vec<(Action, u16, &str, &str)> = vec![
        (
            submit(
                gpu_spec(garbage, None),
                declaration(vec![out(0, 16)], false),
            ),
            422,
            "invalid_shader",
            "does not parse",
        ),
        (
            submit(
                gpu_spec(not_text, None),
                declaration(vec![out(0, 16)], false),
            ),
            422,
            "invalid_shader",
            "UTF-8",
        ),
        (
            submit(gpu_spec(texture, None), declaration(vec![out(0, 16)], true)),
            422,
            "invalid_shader",
            "refused",
        ),
        (
            submit(gpu_spec(floats, None), declaration(vec![out(0, 16)], false)),
            422,
            "invalid_shader",
            "one-class",
        ),
        (
            submit(gpu_spec(writes, None), declaration(vec![out(1, 16)], false)),
            422,
            "invalid_shader",
            "uses bindings [0]",
        ),
        (
            submit(
                gpu_spec(writes, None),
                GpuJob {
                    entry: "nope".into(),
                    ..declaration(vec![out(0, 16)], false)
                },
            ),
            422,
            "invalid_shader",
            "nope",
        ),
        (
            // The input is 4 bytes; the shader reads 32.
            submit(
                gpu_spec(reads, Some(short)),
                declaration(
                    vec![
                        GpuBuffer {
                            binding: 0,
                            fill: GpuFill::Input("data".into()),
                            output: false,
                        },
                        out(1, 4),
                    ],
                    false,
                ),
            ),
            422,
            "invalid_shader",
            "at least 32",
        ),
        (
            // An output the shader only reads.
            submit(
                gpu_spec(reads, Some(short)),
                declaration(
                    vec![
                        GpuBuffer {
                            binding: 0,
                            fill: GpuFill::Input("data".into()),
                            output: true,
                        },
                        out(1, 4),
                    ],
                    false,
                ),
            ),
            422,
            "invalid_shader",
            "read_write",
        ),
        (
            submit(
                gpu_spec(writes, None),
                declaration(vec![out(0, 2 << 20)], false),
            ),
            422,
            "rejected",
            "memory limit",
        ),
        (
            submit(gpu_spec(writes, None), declaration(vec![], false)),
            422,
            "rejected",
            "binds no buffer",
        ),
    ];
    let before = c.http.status();
    for (action, status, kind, says) in table {
        let err = w
            .block_on(c.http.client.action(&me, action.clone()))
            .expect_err("refused");
        assert_eq!(err.status(), Some(status), "{action:?}: {err}");
        let api::ClientError::Api { body, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(body.error, kind, "{body:?}");
        assert!(body.detail.contains(says), "{says}: {body:?}");
    }
    let after = c.http.status();
    assert_eq!(
        (after.log_length, after.state_hash),
        (before.log_length, before.state_hash)
    );
    // The same shader, declared right, is taken (with the storage claim this network wants).
    let network = w.block_on(c.http.client.network()).unwrap();
    let good = api::gpu_submission(
        network.storage.as_ref(),
        gpu_spec(writes, None),
        WRITES.len() as u64,
        None,
        declaration(vec![out(0, 16)], false),
    );
    let job = w
        .block_on(c.http.client.action(&me, good))
        .expect("a good GPU job");
    assert!(job.submitted_job().is_some());
}
