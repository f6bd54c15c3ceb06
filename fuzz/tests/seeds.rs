//! The seed corpus: a handful of valid inputs per target, made from real encoded values and the
//! repository's example files. `cargo test` checks that `corpus/<target>/` holds exactly these
//! seeds and that each decodes; `GRIDMINT_WRITE_CORPUS=1 cargo test` writes them.

use api::Identity;
use engine::{
    Action, Block, BlockHeader, Entry, Equivocation, Input, LeaderCommand, ProviderSpec, Request,
    Signed, SignedHeader, WorkFetch,
};
use gridmint_fuzz::{AnyFile, genesis, initial_state, jobspec, seed_identity};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example(path: &str) -> Vec<u8> {
    std::fs::read(root().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// A GPU job of 16 workgroups writing one zeroed buffer.
fn gpu_job(one_class: bool) -> engine::GpuJob {
    engine::GpuJob {
        entry: "main".into(),
        workgroups: [16, 1, 1],
        buffers: vec![engine::GpuBuffer {
            binding: 0,
            fill: engine::GpuFill::Zeroed(64),
            output: true,
        }],
        one_class,
    }
}

fn provider_spec() -> ProviderSpec {
    ProviderSpec {
        slots: 4,
        cores: 4,
        memory_bytes: 1 << 30,
        gpu: None,
        benchmark_score: 1_000,
        region: "eu-west".into(),
        price_per_fuel: 1,
        operator: None,
    }
}

fn job_spec() -> engine::JobSpec {
    let text = String::from_utf8(example("examples/pi.toml")).expect("pi.toml is UTF-8");
    jobspec::load(&text, &AnyFile, 1_000)
        .expect("examples/pi.toml loads")
        .spec
}

/// Signed actions of the seed identity, nonces from 1.
fn actions() -> Vec<(&'static str, Signed<Action>)> {
    let me = seed_identity();
    let other = Identity::from_secret([8; 32]).id();
    let bodies = [
        ("faucet", Action::Faucet),
        (
            "transfer",
            Action::Transfer {
                to: other,
                amount: engine::tokens(5),
            },
        ),
        (
            "stake",
            Action::Stake {
                amount: engine::tokens(500),
            },
        ),
        (
            "register_provider",
            Action::RegisterProvider(provider_spec()),
        ),
        (
            "submit_job",
            Action::SubmitJobWithStorage {
                spec: job_spec(),
                storage: engine::StorageClaim {
                    input_bytes: 4096,
                    output_bytes: 1024,
                },
            },
        ),
        ("cancel_job", Action::CancelJob(1)),
        ("release_job", Action::ReleaseJob(1)),
        (
            "unstake",
            Action::Unstake {
                amount: engine::tokens(1),
            },
        ),
        (
            "submit_job_with_options",
            Action::SubmitJobWithOptions {
                spec: job_spec(),
                storage: Some(engine::StorageClaim {
                    input_bytes: 4096,
                    output_bytes: 1024,
                }),
                options: engine::JobOptions {
                    success_exits: vec![10, 20],
                    entry: Some("run".into()),
                },
            },
        ),
        (
            "submit_job_with_files",
            Action::SubmitJobWithFiles {
                spec: job_spec(),
                storage: None,
                options: engine::JobOptions::default(),
                files: engine::JobFiles {
                    mounts: vec![engine::Mount {
                        path: "/usr/local/lib".into(),
                        tree: engine::Hash([7; 32]),
                    }],
                    scratch: Some(engine::Scratch {
                        path: "/tmp".into(),
                        bytes: 1 << 20,
                    }),
                },
            },
        ),
        (
            "submit_private_job",
            Action::SubmitPrivateJob {
                spec: job_spec(),
                storage: None,
                options: engine::JobOptions::default(),
                files: engine::JobFiles::default(),
                sealing: engine::Sealing {
                    key_check: engine::Hash([5; 32]),
                    recipients: vec![engine::Recipient {
                        provider: engine::AccountId([6; 32]),
                        wrapped: vec![6; 80],
                    }],
                    clear: vec![engine::Hash([7; 32])],
                },
            },
        ),
        (
            "seal_job_to",
            Action::SealJobTo {
                job: 1,
                recipients: vec![engine::Recipient {
                    provider: engine::AccountId([8; 32]),
                    wrapped: vec![8; 80],
                }],
            },
        ),
        (
            "register_gpu_provider",
            Action::RegisterGpuProvider {
                spec: engine::ProviderSpec {
                    gpu: Some("llvmpipe (10005:0000 llvmpipe Mesa 22.3.6 Vulkan)".into()),
                    ..provider_spec()
                },
                gpu: engine::GpuOffer {
                    fuel_per_ms: 1_000_000,
                    memory_bytes: 1 << 30,
                    fingerprint: engine::Hash([9; 32]),
                    price_per_fuel: 2,
                },
            },
        ),
        (
            "submit_gpu_job",
            Action::SubmitGpuJob {
                spec: job_spec(),
                storage: None,
                gpu: gpu_job(true),
            },
        ),
        (
            "report_metered_results",
            Action::ReportMeteredResults {
                reports: vec![engine::TaskReport {
                    task: engine::TaskId { job: 1, index: 0 },
                    outcome: engine::TaskOutcome::Success,
                    output_hash: engine::Hash([5; 32]),
                    output_size: 12,
                    fuel_used: 1_000,
                }],
                energy: vec![Some(engine::EnergyReport {
                    millijoules: 1_234,
                    method: engine::EnergyMethod::Measured,
                })],
            },
        ),
        (
            "announce",
            Action::Announce(engine::Announcement {
                suspended: vec![
                    engine::Suspension::OwnerActive,
                    engine::Suspension::OnBattery,
                ],
                grams_per_kwh: Some(30),
            }),
        ),
        (
            "submit_with_preferences",
            Action::SubmitWithPreferences {
                preferences: engine::JobPreferences {
                    prefer_low_carbon: true,
                },
                submission: Box::new(Action::SubmitJob(job_spec())),
            },
        ),
        (
            "delegate",
            Action::Delegate {
                provider: engine::AccountId([1; 32]),
                amount: 5_000_000_000,
            },
        ),
        (
            "undelegate",
            Action::Undelegate {
                provider: engine::AccountId([1; 32]),
                amount: 1_000_000_000,
            },
        ),
        (
            "withdraw_rewards",
            Action::WithdrawRewards {
                provider: engine::AccountId([1; 32]),
            },
        ),
        (
            "set_commission",
            Action::SetCommission {
                commission_bps: 1_500,
            },
        ),
        (
            "propose",
            Action::Propose {
                title: "lower the fee to 2%".into(),
                changes: vec![
                    engine::ParamChange::FeeBps { bps: 200 },
                    engine::ParamChange::TreasurySpend {
                        to: engine::AccountId([2; 32]),
                        amount: 1_000_000_000,
                    },
                ],
                deposit: 100_000_000_000,
            },
        ),
        (
            "vote",
            Action::Vote {
                proposal: 1,
                option: engine::VoteOption::NoWithVeto,
            },
        ),
        (
            "propose_with_delay",
            Action::ProposeWithDelay {
                title: "add a validator a day after the vote".into(),
                changes: vec![engine::ParamChange::Validator(
                    engine::ValidatorChange::Add(engine::Validator {
                        account: engine::AccountId([4; 32]),
                        power: 2,
                        address: "http://10.0.0.4:7700".into(),
                        stake: 0,
                    }),
                )],
                deposit: 100_000_000_000,
                delay_ms: 86_400_000,
            },
        ),
        (
            "reserve",
            Action::Reserve(engine::reserve::ReservationSpec {
                slots: 4,
                cores: 8,
                memory_bytes: 16 << 30,
                gpu: true,
                region: Some("eu-west".into()),
                period_ms: 3_600_000,
                periods: 24,
                price_per_slot: 5_000_000_000,
            }),
        ),
        (
            "accept_reservation",
            Action::AcceptReservation {
                reservation: 1,
                slots: 2,
            },
        ),
        (
            "cancel_reservation",
            Action::CancelReservation { reservation: 1 },
        ),
        (
            "leave_reservation",
            Action::LeaveReservation { reservation: 1 },
        ),
        (
            "challenge_gpu_class",
            Action::ChallengeGpuClass {
                provider: engine::AccountId([7; 32]),
                challenge: 0x0123_4567_89ab_cdef,
                commitment: engine::Hash([9; 32]),
            },
        ),
        (
            "answer_gpu_class",
            Action::AnswerGpuClass {
                answer: engine::Hash([5; 32]),
            },
        ),
        (
            "submit_gpu_job_with_tolerance",
            Action::SubmitGpuJobWithTolerance {
                spec: job_spec(),
                storage: None,
                gpu: gpu_job(false),
                tolerance: engine::Tolerance {
                    max_ulps: 4,
                    near_zero: 0x3586_37bd,
                },
            },
        ),
        (
            "report_results_with_outputs",
            Action::ReportResultsWithOutputs {
                reports: vec![engine::TaskReport {
                    task: engine::TaskId { job: 1, index: 0 },
                    outcome: engine::TaskOutcome::Success,
                    output_hash: engine::Hash::of(&[0, 0, 0x80, 0x3f]),
                    output_size: 4,
                    fuel_used: 1_000,
                }],
                energy: vec![None],
                outputs: vec![Some(engine::Output(vec![0, 0, 0x80, 0x3f]))],
            },
        ),
    ];
    bodies
        .into_iter()
        .zip(1..)
        .map(|((name, body), nonce)| (name, me.sign_with_nonce(nonce, body)))
        .collect()
}

fn fetch(nonce: u64) -> Signed<Request> {
    seed_identity().sign_with_nonce(
        nonce,
        Request::Fetch {
            max: 4,
            wait_ms: 0,
            held: vec![],
            cached: vec![],
        },
    )
}

fn header(height: u64, time: u64) -> BlockHeader {
    BlockHeader {
        height,
        prev_hash: engine::genesis_hash(&initial_state()),
        time,
        first_seq: 1,
        last_seq: 1,
        commands_root: engine::Hash([3; 32]),
        state_hash: engine::Hash([4; 32]),
        validator: seed_identity().id(),
    }
}

fn evidence() -> Equivocation {
    let me = seed_identity();
    let [first, second] = [header(1, 1_000), header(1, 2_000)].map(|h| {
        let block = api::chain::sign_block(&me, h);
        SignedHeader {
            header: block.header,
            signature: block.signature,
        }
    });
    Equivocation {
        validator: me.id(),
        first,
        second,
    }
}

fn entries() -> Vec<(&'static str, Entry)> {
    let mut out: Vec<(&'static str, Entry)> = actions()
        .into_iter()
        .filter(|(name, _)| ["transfer", "stake", "register_provider", "submit_job"].contains(name))
        .map(|(name, signed)| {
            (
                name,
                Entry {
                    time: 1_000,
                    input: Input::Signed(signed),
                },
            )
        })
        .collect();
    let leader = |command| Entry {
        time: 5_000,
        input: Input::Leader(command),
    };
    out.push(("expire_job", leader(LeaderCommand::ExpireJob { job: 1 })));
    out.push((
        "beacon",
        leader(LeaderCommand::Beacon {
            reveal: None,
            commit: engine::Hash([9; 32]),
        }),
    ));
    out.push((
        "fetch",
        Entry {
            time: 2_000,
            input: Input::Fetch(Box::new(WorkFetch {
                fetches: vec![fetch(9)],
                waiting: vec![],
            })),
        },
    ));
    out.push((
        "evidence",
        Entry {
            time: 3_000,
            input: Input::Evidence(Box::new(evidence())),
        },
    ));
    out
}

fn postcard<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("encodes")
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec_pretty(value).expect("encodes")
}

/// A chain's first block over `entry`, with the right links, root and state hash.
fn block(entry: &Entry) -> Block {
    let bytes = postcard(entry);
    let mut state = initial_state();
    if let Err(e) = state.apply(entry) {
        panic!("the seed entry does not apply: {e:?}");
    }
    api::chain::sign_block(
        &seed_identity(),
        BlockHeader {
            commands_root: engine::merkle_root(&[engine::chain::leaf(&bytes)]),
            state_hash: state.hash(),
            ..header(1, 1_000)
        },
    )
}

/// Every target's seeds: (target, file name, bytes).
fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out = Vec::new();
    let actions = actions();
    for (name, signed) in &actions {
        out.push(("signed_action", format!("{name}.json"), json(signed)));
    }
    out.push((
        "signed_action",
        "heartbeat.json".into(),
        json(&seed_identity().sign_with_nonce(20, Request::Heartbeat)),
    ));
    out.push(("signed_action", "fetch.json".into(), json(&fetch(21))));
    out.push(("signed_action", "evidence.json".into(), json(&evidence())));

    let all: Vec<Signed<Action>> = actions.iter().map(|(_, s)| s.clone()).collect();
    out.push(("action_batch", "all.json".into(), json(&all)));
    out.push(("action_batch", "one.json".into(), json(&all[..1])));
    out.push(("action_batch", "empty.json".into(), b"[]".to_vec()));

    let entries = entries();
    for (name, entry) in &entries {
        out.push(("entry", format!("{name}.postcard"), postcard(entry)));
    }

    out.push((
        "block",
        "transfer.postcard".into(),
        postcard(&block(&entries[0].1)),
    ));
    out.push((
        "block",
        "stake.postcard".into(),
        postcard(&block(&entries[1].1)),
    ));

    let mut state = initial_state();
    out.push((
        "snapshot",
        "initial.v19".into(),
        [&[18u8][..], &postcard(&state)].concat(),
    ));
    for (_, entry) in &entries[..4] {
        if let Err(e) = state.apply(entry) {
            panic!("the seed entries do not apply in order: {e:?}");
        }
    }
    out.push((
        "snapshot",
        "with_job.v19".into(),
        [&[18u8][..], &postcard(&state)].concat(),
    ));

    out.push((
        "stored_genesis",
        "dev.v7".into(),
        [&[6u8][..], &postcard(&gridmint_fuzz::genesis())].concat(),
    ));
    let example_genesis = genesis::parse_network(
        std::str::from_utf8(&example("examples/genesis.toml")).expect("UTF-8"),
    )
    .expect("examples/genesis.toml parses")
    .0;
    out.push((
        "stored_genesis",
        "example.v7".into(),
        [&[6u8][..], &postcard(&example_genesis)].concat(),
    ));

    for name in [
        "bench",
        "gpu-hash",
        "gpu-mandelbrot",
        "gpu-matmul",
        "gpu-mlp",
        "js-sweep",
        "mandelbrot",
        "noop",
        "pi",
        "python-sweep",
        "sat",
        "wordcount",
    ] {
        out.push((
            "job_spec",
            format!("{name}.toml"),
            example(&format!("examples/{name}.toml")),
        ));
    }

    let genesis_file = example("examples/genesis.toml");
    out.push(("genesis_toml", "example.toml".into(), genesis_file.clone()));
    let validators = format!(
        "\n[[validators]]\naccount = \"{}\"\naddress = \"http://127.0.0.1:7001/\"\nstake = \"1000\"\n\n\
         [[validators]]\naccount = \"{}\"\npower = 2\naddress = \"http://127.0.0.1:7002\"\n",
        seed_identity().id(),
        Identity::from_secret([8; 32]).id(),
    );
    out.push((
        "genesis_toml",
        "validators.toml".into(),
        [genesis_file, validators.into_bytes()].concat(),
    ));

    let ping = api::wire::Ping {
        provider: seed_identity().id(),
        token: engine::Hash([5; 32]),
    };
    out.push(("udp_ping", "ping.bin".into(), ping.to_datagram(1).to_vec()));
    out.push((
        "udp_ping",
        "ack.bin".into(),
        api::wire::PingAck::Alive.to_datagram().to_vec(),
    ));

    for name in [
        "matmul",
        "matmul-tiled",
        "mandelbrot",
        "mandelbrot-tiles",
        "mlp",
        "sha256-search",
    ] {
        out.push((
            "shader",
            format!("{name}.wgsl"),
            example(&format!("guests/gpu/{name}.wgsl")),
        ));
    }
    // GLSL, detected by its `#version` (`gpu::language`).
    out.push((
        "shader",
        "matmul.comp".into(),
        example("guests/gpu/matmul.comp"),
    ));

    for name in ["noop", "pi", "wc_reduce"] {
        out.push((
            "wasm_admission",
            format!("{name}.wasm"),
            example(&format!("guests/{name}.wasm")),
        ));
    }
    out
}

/// Whether the target's real decoder takes `bytes` (a seed that does not is wasted).
fn decodes(target: &str, bytes: &[u8]) -> bool {
    let text = || std::str::from_utf8(bytes).unwrap_or_default();
    match target {
        "signed_action" => {
            serde_json::from_slice::<Signed<Action>>(bytes).is_ok_and(|s| api::verify(&s).is_ok())
                || serde_json::from_slice::<Signed<Request>>(bytes)
                    .is_ok_and(|s| api::verify(&s).is_ok())
                || serde_json::from_slice::<Equivocation>(bytes).is_ok_and(|e| {
                    api::chain::check_evidence(&e, Some(e.first.header.hash())).is_ok()
                })
        }
        "action_batch" => serde_json::from_slice::<Vec<Signed<Action>>>(bytes).is_ok_and(|b| {
            api::verify_batch(&b, &api::BatchKeys::new(8))
                .iter()
                .all(Result::is_ok)
        }),
        "entry" => {
            store::decode_entry(1, bytes).is_ok()
                && engine::decode_canonical::<Entry>(bytes)
                    .is_ok_and(|e| api::chain::forged_signer(&e.input).is_none())
        }
        "block" => store::SqliteLog::decode_block(1, bytes)
            .is_ok_and(|b| api::chain::block_signature_ok(&b)),
        "snapshot" => store::decode_snapshot(&bytes[1..], u32::from(bytes[0] % 19) + 1).is_ok(),
        "stored_genesis" => store::decode_genesis(&bytes[1..], u32::from(bytes[0] % 7) + 1)
            .is_ok_and(|g| engine::State::from_genesis(&g).is_ok()),
        "job_spec" => jobspec::load(text(), &AnyFile, 1_000).is_ok(),
        "genesis_toml" => genesis::parse_network(text()).is_ok_and(|(g, set)| {
            set.validate().is_ok() && engine::State::from_genesis(&g).is_ok()
        }),
        "wasm_admission" => wasmparser::validate(bytes).is_ok(),
        "shader" => gpu::admit_bytes(bytes, "main").is_ok(),
        "udp_ping" => {
            api::wire::SealedPing::from_datagram(bytes).is_some()
                || api::wire::PingAck::from_datagram(bytes).is_some()
        }
        _ => false,
    }
}

#[test]
fn every_seed_decodes_with_its_targets_decoder() {
    for (target, name, bytes) in seeds() {
        assert!(decodes(target, &bytes), "{target}/{name} does not decode");
    }
}

#[test]
fn the_committed_corpus_holds_the_seeds() {
    let write = std::env::var_os("GRIDMINT_WRITE_CORPUS").is_some_and(|v| v == "1");
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    for (target, name, bytes) in seeds() {
        let path = corpus.join(target).join(&name);
        if write {
            std::fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            std::fs::write(&path, &bytes).expect("write seed");
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is missing or stale: run GRIDMINT_WRITE_CORPUS=1 cargo test --test seeds in fuzz/",
                path.display()
            );
        }
    }
}
