//! Rules 23: GPU jobs through real processes. Providers run with `--gpu-software` (Mesa's
//! lavapipe, a real Vulkan device on the CPU, which `.ci/run` installs): the examples a user
//! submits run on them, verified by replicas as any job is, and never on a provider without a
//! GPU; a shader or a declaration the GPU sandbox would refuse is refused at submission with a
//! typed 4xx and changes nothing. Rules 28: the first GPU provider founds its class and proves
//! the next ones' by checking them; a provider that copies a member's declared GPU and offer
//! without the device stays pending and gets no float task.

use crate::support::*;
use api::Identity;
use bytes::Bytes;
use engine::{
    AccountId, Action, Event, GpuBuffer, GpuFill, GpuJob, InputFile, JobSpec, Limits, ProviderSpec,
    TaskSpec,
};
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
    // Rules 28: the first GPU provider founded the class (each started once the one before
    // was active).
    assert!(
        info.stdout
            .contains("gpu class  proven: it founded the class"),
        "{}",
        info.stdout
    );

    // The hash search as a user submits it (the network's adaptive verification: new
    // providers' results are confirmed by others).
    let hash = w.submit(&c.url, &example("gpu-hash.toml"));
    // The matrix products, the perceptron and the render: float shaders, so one class each.
    let matmul = w.submit(&c.url, &example("gpu-matmul.toml"));
    let mlp = w.submit(&c.url, &example("gpu-mlp.toml"));
    let render = w.submit(&c.url, &example("gpu-mandelbrot.toml"));
    // Rules 30: the same products with a tolerance instead of one class.
    let any = w.submit(&c.url, &example("gpu-matmul-any.toml"));
    // The same products again, the shader in GLSL (guests/gpu/matmul.comp).
    let glsl = w.submit(&c.url, &example("gpu-matmul-glsl.toml"));
    // New providers' results are confirmed by replicas (until they are trusted).
    let mut replicated = false;
    for job in [hash, matmul, mlp, render, any, glsl] {
        let view = c.http.wait_job(job);
        assert_eq!(view.status, engine::JobStatus::Completed, "{view:?}");
        let view = c.http.job_with_tasks(job);
        assert_eq!(
            view.gpu_class.is_some(),
            job != hash && job != any,
            "{view:?}"
        );
        assert_eq!(view.gpu_tolerance.is_some(), job == any, "{view:?}");
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
    // Rules 28: the float jobs ran on proven classes: the first provider founded its class and
    // members' checks proved the others within seconds.
    let classes = poll("every GPU provider's class proven", WAIT, || {
        let view = w.block_on(c.http.client.gpu_classes(None, None)).unwrap();
        (view.proven.len() == gpus.len()).then_some(view)
    });
    assert!(classes.pending.is_empty(), "{classes:?}");
    for p in &classes.proven {
        if p.provider == gpus[0].id {
            assert_eq!(p.by, None, "{classes:?}");
        } else {
            let by = p.by.expect("proven by a member's check");
            assert!(
                by != p.provider && gpus.iter().any(|g| g.id == by),
                "{classes:?}"
            );
        }
        let view = c.http.provider(p.provider).unwrap();
        assert_eq!(view.gpu_class.as_ref(), Some(&p.class));
        assert_eq!(view.gpu_class_pending, None);
    }
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
    assert_eq!(w.results(&c.url, glsl), want);
    // Rules 30: the tolerant job's results, reported with their outputs and compared value by
    // value, are the same products (one device here: they agree exactly too).
    assert_eq!(w.results(&c.url, any), want);
    let status = w
        .cli(&["job", "status", &any.to_string(), "--coordinator", &c.url])
        .ok();
    assert!(
        status
            .stdout
            .contains("float results: any GPU, agreeing within 4 ULPs or both within 1e-6 of zero"),
        "{}",
        status.stdout
    );
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
    // Rules 30.
    let tolerant = |spec: JobSpec, gpu: GpuJob, max_ulps: u32| Action::SubmitGpuJobWithTolerance {
        spec,
        storage: None,
        gpu,
        tolerance: engine::Tolerance {
            max_ulps,
            near_zero: 0,
        },
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
        // Rules 30: a tolerance compares f32 outputs, at most 64 KiB of them per task, and is
        // not one class too.
        (
            tolerant(
                gpu_spec(writes, None),
                declaration(vec![out(0, 16)], false),
                4,
            ),
            422,
            "invalid_shader",
            "more than f32 values",
        ),
        (
            tolerant(
                gpu_spec(floats, None),
                declaration(vec![out(0, 128 << 10)], false),
                4,
            ),
            422,
            "invalid_shader",
            "at most 65536",
        ),
        (
            tolerant(
                gpu_spec(floats, None),
                declaration(vec![out(0, 16)], true),
                4,
            ),
            422,
            "rejected",
            "within a tolerance or on one class",
        ),
        (
            tolerant(
                gpu_spec(floats, None),
                declaration(vec![out(0, 16)], false),
                engine::MAX_ULPS + 1,
            ),
            422,
            "rejected",
            "ULPs",
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
        None,
    );
    let job = w
        .block_on(c.http.client.action(&me, good))
        .expect("a good GPU job");
    assert!(job.submitted_job().is_some());
}

/// The refusal `action` by `who` must get: 422 `invalid_class_check`, its detail saying `says`.
fn refused_class_check(c: &Coordinator, who: &Identity, action: Action, says: &str) {
    let err = c
        .http
        .block_on(c.http.client.action(who, action.clone()))
        .expect_err("refused");
    assert_eq!(err.status(), Some(422), "{action:?}: {err}");
    let api::ClientError::Api { body, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(body.error, "invalid_class_check", "{body:?}");
    assert!(body.detail.contains(says), "{says}: {body:?}");
}

/// `provider`'s pending claim, once `until` holds of it.
fn pending_claim(
    c: &Coordinator,
    provider: AccountId,
    what: &str,
    until: impl Fn(&api::wire::PendingClassView) -> bool,
) -> api::wire::PendingClassView {
    poll(what, WAIT, || {
        let view = c
            .http
            .block_on(c.http.client.gpu_classes(None, Some(provider)))
            .unwrap();
        assert!(view.proven.is_empty(), "{view:?}");
        view.pending.into_iter().next().filter(|p| until(p))
    })
}

#[test]
fn a_gpu_class_is_proven_by_a_members_check_and_a_copied_claim_is_not() {
    let w = World::new();
    let c = w.coordinator(&[]);
    let client = &c.http.client;
    let classes =
        |provider: Option<AccountId>| w.block_on(client.gpu_classes(None, provider)).unwrap();
    // The first GPU provider founds its class: nobody could check it.
    let first = w.provider_with(&c, 1, &["--gpu-software"]);
    let founded = poll("the first provider's class", WAIT, || {
        classes(Some(first.id)).proven.into_iter().next()
    });
    assert_eq!(founded.by, None, "{founded:?}");
    let class = founded.class.clone();
    // The second claims the same class and is proven by the first's check (a challenge only
    // its device could answer).
    let second = w.provider_with(&c, 1, &["--gpu-software"]);
    let proven = poll("the second provider's class proven", WAIT, || {
        classes(Some(second.id)).proven.into_iter().next()
    });
    assert_eq!(
        (proven.class.as_str(), proven.by),
        (class.as_str(), Some(first.id))
    );
    let info = |id: AccountId| {
        w.cli(&["provider", "info", &id.to_hex(), "--coordinator", &c.url])
            .ok()
            .stdout
    };
    let said = info(second.id);
    assert!(
        said.contains(&format!("gpu class  proven by {}'s check", first.id)),
        "{said}"
    );

    // A provider that copies the declared GPU and the offer (its fingerprint of the public
    // challenge) without the device: its claim waits to be proven.
    let real = c.http.provider(first.id).unwrap();
    let fake = Identity::generate();
    w.block_on(client.action(&fake, Action::Faucet)).unwrap();
    let stake = Action::Stake {
        amount: engine::tokens(100),
    };
    w.block_on(client.action(&fake, stake)).unwrap();
    let spec = ProviderSpec {
        slots: 2,
        // More than any real provider here: only it fits the jobs below.
        cores: 64,
        memory_bytes: 1 << 30,
        gpu: real.spec.gpu.clone(),
        benchmark_score: 100_000,
        region: "local".into(),
        price_per_fuel: 1,
        operator: None,
    };
    let offer = engine::GpuOffer {
        price_per_fuel: 1,
        ..real.gpu_offer.clone().unwrap()
    };
    let registered = w
        .block_on(client.action(&fake, Action::RegisterGpuProvider { spec, gpu: offer }))
        .unwrap();
    assert!(
        registered.events.iter().any(|e| matches!(
            e,
            Event::GpuClassPending { provider, class: claimed }
                if *provider == fake.id() && *claimed == class
        )),
        "{registered:?}"
    );
    let view = c.http.provider(fake.id()).unwrap();
    assert_eq!(
        (view.gpu_class, view.gpu_class_pending.as_ref()),
        (None, Some(&class))
    );
    // The class's entries, by the class (a string with spaces and commas).
    let of_class = w.block_on(client.gpu_classes(Some(&class), None)).unwrap();
    let members: Vec<AccountId> = of_class.proven.iter().map(|p| p.provider).collect();
    let mut want = vec![first.id, second.id];
    want.sort();
    assert_eq!(members, want, "{of_class:?}");
    assert_eq!(of_class.pending.len(), 1, "{of_class:?}");
    // What a member polls: its own entry and the claims, not the other members.
    let work = w
        .block_on(client.gpu_class_work(&class, second.id))
        .unwrap();
    assert_eq!(
        work.proven.iter().map(|p| p.provider).collect::<Vec<_>>(),
        [second.id],
        "{work:?}"
    );
    assert_eq!(
        work.pending.iter().map(|p| p.provider).collect::<Vec<_>>(),
        [fake.id()],
        "{work:?}"
    );

    // A member checks it; a wrong answer fails the check (200: logged), and the claim stays
    // pending for the other member to try.
    let mut checkers = Vec::new();
    for round in 0..2 {
        let open = pending_claim(&c, fake.id(), "a member's check of the copied claim", |p| {
            p.challenge
                .as_ref()
                .is_some_and(|ch| !checkers.contains(&ch.checker))
        });
        let checker = open.challenge.as_ref().unwrap().checker;
        assert!(checker == first.id || checker == second.id, "{open:?}");
        w.block_on(client.heartbeat(&fake)).unwrap();
        let answered = w
            .block_on(client.action(
                &fake,
                Action::AnswerGpuClass {
                    answer: engine::Hash([7; 32]),
                },
            ))
            .unwrap();
        assert!(
            answered.events.contains(&Event::GpuClassCheckFailed {
                provider: fake.id(),
                checker,
            }),
            "{answered:?}"
        );
        checkers.push(checker);
        let after = pending_claim(&c, fake.id(), "the failed check", |_| true);
        assert_eq!(after.class, class);
        assert!(after.checked_by.contains(&checker), "{after:?}");
        // Cleared (the other member may have opened its own already).
        assert!(
            after
                .challenge
                .as_ref()
                .is_none_or(|ch| ch.checker != checker),
            "round {round}: {after:?}"
        );
    }
    // Both members checked it: nothing is open, and nobody may check it again.
    let settled = pending_claim(&c, fake.id(), "both checks failed", |p| {
        p.challenge.is_none() && p.checked_by.len() == 2
    });
    assert_eq!(c.http.provider(fake.id()).unwrap().gpu_class, None);

    // Refusals, which change nothing: an answer with no open check; a check by an account
    // that is no proven member of the class (a stranger, the claimant itself).
    let stranger = Identity::generate();
    w.block_on(client.action(&stranger, Action::Faucet))
        .unwrap();
    let before = (
        classes(None),
        w.block_on(client.account(stranger.id())).unwrap(),
    );
    refused_class_check(
        &c,
        &fake,
        Action::AnswerGpuClass {
            answer: engine::Hash([7; 32]),
        },
        "no open class check",
    );
    for who in [&stranger, &fake] {
        refused_class_check(
            &c,
            who,
            Action::ChallengeGpuClass {
                provider: fake.id(),
                challenge: 42,
                commitment: engine::Hash([1; 32]),
            },
            "only an active provider of another operator whose class is proven",
        );
    }
    let after = (
        classes(None),
        w.block_on(client.account(stranger.id())).unwrap(),
    );
    assert_eq!(
        (&after.0.proven, &after.0.pending, &after.1),
        (&before.0.proven, &before.0.pending, &before.1)
    );
    assert_eq!(after.0.pending, vec![settled]);

    // A float (one-class) job only it could run (by its cores) gets no task to it; an
    // integer-only GPU job alike does.
    let network = w.block_on(client.network()).unwrap();
    let submit = |shader: &str, one_class: bool| {
        let hash = w
            .block_on(client.put_blob(&stranger, Bytes::from(shader.as_bytes().to_vec())))
            .unwrap();
        let mut spec = gpu_spec(hash, None);
        spec.requirements.cores = 64;
        let action = api::gpu_submission(
            network.storage.as_ref(),
            spec,
            shader.len() as u64,
            None,
            declaration(vec![out(0, 16)], one_class),
            None,
        );
        w.block_on(client.action(&stranger, action))
            .unwrap()
            .submitted_job()
            .expect("a job")
    };
    w.block_on(client.heartbeat(&fake)).unwrap();
    let floats = submit(FLOATS, true);
    let integers = submit(WRITES, false);
    let fetched = w
        .block_on(client.fetch(&fake, 2, std::time::Duration::ZERO, vec![], vec![]))
        .unwrap();
    let jobs: Vec<_> = fetched.tasks.iter().map(|t| t.task.job).collect();
    assert_eq!(jobs, vec![integers], "{fetched:?}");
    let view = c.http.job_with_tasks(floats);
    assert!(view.tasks.iter().all(|t| t.runs.is_empty()), "{view:?}");
    let said = info(fake.id());
    assert!(
        said.contains("gpu class  pending: no member has proven it yet")
            && said.contains("2 check(s) failed"),
        "{said}"
    );
}
