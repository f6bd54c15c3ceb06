//! Rules 23: GPU jobs — declared buffers checked against the spec, tasks only for providers
//! that declare a GPU, a float job's replicas from the one class its first provider declared,
//! the declaration in every map descriptor and in the state's hash.

use crate::support::*;
use engine::{
    AccountId, Action, Aggregate, GpuBuffer, GpuFill, GpuJob, GpuOffer, InputFile, JobSpec,
    LeaderCommand, ProviderSpec, Redundancy, Rejection,
};

const OWNER: u8 = 1;

fn gpu_provider(class: &str) -> ProviderSpec {
    ProviderSpec {
        gpu: Some(class.into()),
        ..provider_spec()
    }
}

fn offer(fuel_per_ms: u64) -> GpuOffer {
    GpuOffer {
        fuel_per_ms,
        memory_bytes: 1 << 30,
        fingerprint: hash(0xf1),
        price_per_fuel: 1,
    }
}

/// `who` registers with a GPU of `class` and an offer of `fuel_per_ms`.
pub(super) fn register_gpu(w: &mut World, who: AccountId, class: &str, fuel_per_ms: u64) {
    w.act(
        who,
        Action::RegisterGpuProvider {
            spec: gpu_provider(class),
            gpu: offer(fuel_per_ms),
        },
    );
}

/// Rules 28: `checker`, a proven member of the class `who` claims, checks it, and `who`
/// answers right: `who`'s class is proven.
pub(super) fn prove(w: &mut World, checker: AccountId, who: AccountId) {
    let answer = hash(0xa5);
    w.act(
        checker,
        Action::ChallengeGpuClass {
            provider: who,
            challenge: 7,
            commitment: engine::class_commitment(&who, 7, &answer),
        },
    );
    w.act(who, Action::AnswerGpuClass { answer });
    assert!(w.state.gpu_class_of(&who).is_some());
}

/// `n` tasks, each with an input `data`.
pub(super) fn spec(n: usize) -> JobSpec {
    let mut spec = job_spec(n);
    for (i, task) in spec.tasks.iter_mut().enumerate() {
        task.inputs.push(InputFile {
            name: "data".into(),
            hash: hash(0x40 + i as u8),
        });
    }
    spec
}

pub(super) fn declaration(one_class: bool) -> GpuJob {
    GpuJob {
        entry: "main".into(),
        workgroups: [8, 1, 1],
        // Out of order on purpose: the state keeps them sorted.
        buffers: vec![
            GpuBuffer {
                binding: 2,
                fill: GpuFill::Zeroed(1024),
                output: true,
            },
            GpuBuffer {
                binding: 0,
                fill: GpuFill::Input("data".into()),
                output: false,
            },
        ],
        one_class,
    }
}

/// A leader's assignment of `task` to `provider` is refused: the task does not fit, and the
/// reason says `why`.
#[track_caller]
fn refused(w: &mut World, provider: AccountId, task: engine::TaskId, why: &str) {
    let rejection = w.lead_rejected(LeaderCommand::AssignTasks {
        provider,
        tasks: vec![task],
    });
    assert!(
        matches!(&rejection, Rejection::TaskDoesNotFit { why: says, .. } if says.contains(why)),
        "{rejection}"
    );
}

fn gpu_job(spec: JobSpec, gpu: GpuJob) -> Action {
    Action::SubmitGpuJob {
        spec,
        storage: None,
        gpu,
    }
}

fn submit(w: &mut World, spec: JobSpec, gpu: GpuJob) -> u64 {
    let job = w.state.next_job;
    w.act(acct(OWNER), gpu_job(spec, gpu));
    job
}

#[test]
fn a_gpu_jobs_tasks_go_only_to_gpu_providers_and_carry_its_declaration() {
    let mut w = World::new();
    w.register(acct(2), provider_spec());
    register_gpu(&mut w, acct(3), "GPU A (10de:2684 550.1 Vulkan)", 1000);
    // A GPU typed in by hand, with no device offered: no GPU tasks either.
    w.register(acct(4), gpu_provider("GPU A (10de:2684 550.1 Vulkan)"));
    let mut spec = spec(2);
    spec.aggregate = Aggregate::Reduce(reduce_spec());
    let job = submit(&mut w, spec, declaration(false));
    let want = declaration(false);
    let stored = w.state.gpu_job(job).unwrap();
    assert_eq!(
        stored.buffers.iter().map(|b| b.binding).collect::<Vec<_>>(),
        [0, 2]
    );
    assert_eq!(
        w.state.task_descriptor(tid(job, 0)).unwrap().gpu.as_ref(),
        Some(stored)
    );
    assert_eq!(stored.entry, want.entry);

    // Provider 2 has no GPU: nothing offered, and a leader's assignment is refused.
    assert!(w.state.pick(acct(2), 8).is_empty());
    refused(&mut w, acct(2), tid(job, 0), "declares no GPU");
    assert!(w.state.pick(acct(4), 8).is_empty());
    refused(&mut w, acct(4), tid(job, 0), "offers no GPU device");
    w.assign(acct(3), &[tid(job, 0), tid(job, 1)]);
    w.report(
        acct(3),
        vec![success(tid(job, 0), 1, 10), success(tid(job, 1), 2, 10)],
    );
    // The reduce step is an ordinary WebAssembly task.
    let reduce = w.state.task_descriptor(tid(job, 2)).unwrap();
    assert_eq!(reduce.gpu, None);
    // An integer job pins no class.
    assert_eq!(w.state.gpu_class(job), None);
}

#[test]
fn a_float_jobs_replicas_come_from_the_class_its_first_provider_declared() {
    let mut w = World::new();
    let a = "GPU A (10de:2684 550.1 Vulkan)";
    let b = "GPU B (1002:744c 24.0 Vulkan)";
    register_gpu(&mut w, acct(2), a, 1000);
    register_gpu(&mut w, acct(3), b, 1000);
    register_gpu(&mut w, acct(4), a, 1000);
    prove(&mut w, acct(2), acct(4));
    let mut spec = spec(2);
    spec.redundancy = Redundancy::Fixed {
        quorum: 2,
        max_results: 2,
    };
    let float = submit(&mut w, spec.clone(), declaration(true));
    let integer = submit(&mut w, spec, declaration(false));
    assert_eq!(w.state.gpu_class(float), None);
    w.assign(acct(2), &[tid(float, 0)]);
    let class = w.state.gpu_class_of(&acct(2)).unwrap();
    assert!(
        class.starts_with(a) && class.contains("fingerprint f1f1f1f1"),
        "{class}"
    );
    assert_eq!(w.state.gpu_class(float), Some(class.as_str()));
    // Class B may take the integer job's tasks but none of the float job's any more.
    assert_eq!(
        w.state.pick(acct(3), 8),
        vec![tid(integer, 0), tid(integer, 1)]
    );
    refused(&mut w, acct(3), tid(float, 0), "one GPU class");
    // Another provider of class A takes the replica and the other task.
    w.assign(acct(4), &[tid(float, 0), tid(float, 1)]);
    w.report(acct(2), vec![success(tid(float, 0), 7, 10)]);
    w.report(acct(4), vec![success(tid(float, 0), 7, 10)]);
    assert!(w.state.jobs[&float].tasks[0].result.is_some());
}

#[test]
fn the_declaration_and_the_class_are_part_of_the_state_hash() {
    let mut a = World::new();
    let mut b = World::new();
    submit(&mut a, spec(1), declaration(true));
    submit(&mut b, spec(1), declaration(false));
    assert_ne!(a.state.hash(), b.state.hash());
    let mut c = World::new();
    let mut d = World::new();
    for (w, class) in [(&mut c, "A"), (&mut d, "B")] {
        register_gpu(w, acct(2), class, 1000);
        let job = submit(w, spec(1), declaration(true));
        w.assign(acct(2), &[tid(job, 0)]);
    }
    let differ = c.state.hash() != d.state.hash();
    assert!(differ);
}

#[test]
fn bad_declarations_and_older_rules_are_refused_whole() {
    let mut w = World::new();
    let mut missing = declaration(false);
    missing.buffers[1].fill = GpuFill::Input("weights".into());
    let mut no_output = declaration(false);
    no_output.buffers[0].output = false;
    let mut zero = declaration(false);
    zero.workgroups = [0, 1, 1];
    let before = w.state.hash();
    for bad in [missing, no_output, zero] {
        let rejection = w.act_rejected(acct(OWNER), gpu_job(spec(1), bad.clone()));
        assert!(
            matches!(rejection, Rejection::InvalidJobSpec(_)),
            "{bad:?}: {rejection}"
        );
    }
    assert_eq!(w.state.hash(), before, "a refusal changes nothing");
    let mut old = World::new().under_rules(22);
    let rejection = old.act_rejected(acct(OWNER), gpu_job(spec(1), declaration(false)));
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 23, .. }),
        "{rejection}"
    );
}

#[test]
fn a_gpu_offer_sets_the_speed_estimate_of_gpu_jobs_and_registering_without_one_withdraws_it() {
    let mut w = World::new();
    register_gpu(&mut w, acct(2), "GPU A", 50);
    register_gpu(&mut w, acct(3), "GPU A", 5000);
    let gpu = submit(&mut w, spec(1), declaration(false));
    let cpu = w.submit(acct(OWNER), job_spec(1));
    let (p2, p3) = (&w.state.providers[&acct(2)], &w.state.providers[&acct(3)]);
    let (g, c) = (&w.state.jobs[&gpu], &w.state.jobs[&cpu]);
    assert_eq!(w.state.fuel_per_ms(p2, g), 50);
    assert_eq!(w.state.fuel_per_ms(p3, g), 5000);
    // A CPU job's estimate is the CPU benchmark's, whatever the GPU.
    assert_eq!(w.state.fuel_per_ms(p2, c), w.state.fuel_per_ms(p3, c));
    assert!(w.state.est_us(p3, g) < w.state.est_us(p2, g));

    // A device too small for the job's buffers (its memory limit: 64 MiB).
    w.act(
        acct(6),
        Action::RegisterGpuProvider {
            spec: gpu_provider("GPU A"),
            gpu: GpuOffer {
                memory_bytes: 1 << 20,
                ..offer(9000)
            },
        },
    );
    assert!(!w.state.pick(acct(6), 8).contains(&tid(gpu, 0)));
    refused(&mut w, acct(6), tid(gpu, 0), "holds buffers of");

    // Registering again without an offer withdraws it.
    assert!(w.state.gpu_offer(&acct(2)).is_some());
    w.register(acct(2), gpu_provider("GPU A"));
    assert_eq!(w.state.gpu_offer(&acct(2)), None);

    // Bad offers, and offers before rules 23, are refused whole.
    for (spec, gpu) in [
        (provider_spec(), offer(10)),
        (gpu_provider("GPU A"), offer(0)),
        (
            gpu_provider("GPU A"),
            GpuOffer {
                memory_bytes: 0,
                ..offer(1)
            },
        ),
    ] {
        let rejection = w.act_rejected(acct(5), Action::RegisterGpuProvider { spec, gpu });
        assert!(
            matches!(rejection, Rejection::InvalidProviderSpec(_)),
            "{rejection}"
        );
    }
    let mut old = World::new().under_rules(22);
    let rejection = old.act_rejected(
        acct(2),
        Action::RegisterGpuProvider {
            spec: gpu_provider("GPU A"),
            gpu: offer(10),
        },
    );
    assert!(
        matches!(rejection, Rejection::NeedsRules { needs: 23, .. }),
        "{rejection}"
    );
}

#[test]
fn a_device_that_computes_differently_under_the_same_name_is_a_class_of_its_own() {
    let mut w = World::new();
    let name = "GPU A (10de:2684 550.1 Vulkan)";
    // Providers 2 and 3 name the same GPU; 3's device computes the challenge differently.
    register_gpu(&mut w, acct(2), name, 1000);
    w.act(
        acct(3),
        Action::RegisterGpuProvider {
            spec: gpu_provider(name),
            gpu: GpuOffer {
                fingerprint: hash(0xf2),
                ..offer(1000)
            },
        },
    );
    register_gpu(&mut w, acct(4), name, 1000);
    prove(&mut w, acct(2), acct(4));
    assert_ne!(
        w.state.gpu_class_of(&acct(2)),
        w.state.gpu_class_of(&acct(3))
    );
    assert_eq!(
        w.state.gpu_class_of(&acct(2)),
        w.state.gpu_class_of(&acct(4))
    );
    let mut two = spec(1);
    two.redundancy = Redundancy::Fixed {
        quorum: 2,
        max_results: 2,
    };
    let float = submit(&mut w, two, declaration(true));
    w.assign(acct(2), &[tid(float, 0)]);
    assert!(w.state.pick(acct(3), 8).is_empty());
    assert_eq!(w.state.pick(acct(4), 8), vec![tid(float, 0)]);
    refused(&mut w, acct(3), tid(float, 0), "one GPU class");
    // An integer job does not care.
    let integer = submit(&mut w, spec(1), declaration(false));
    assert!(w.state.pick(acct(3), 8).contains(&tid(integer, 0)));
}

#[test]
fn a_gpu_task_pays_the_gpu_price_and_its_reduce_the_cpu_price() {
    let mut w = World::new();
    w.money_events = true;
    // CPU price 1 (provider_spec), GPU price 3.
    w.act(
        acct(2),
        Action::RegisterGpuProvider {
            spec: gpu_provider("GPU A"),
            gpu: GpuOffer {
                price_per_fuel: 3,
                ..offer(1000)
            },
        },
    );
    let mut with_reduce = spec(1);
    with_reduce.aggregate = Aggregate::Reduce(reduce_spec());
    let job = submit(&mut w, with_reduce, declaration(false));
    w.assign(acct(2), &[tid(job, 0)]);
    let events = w.report(acct(2), vec![success(tid(job, 0), 1, 100)]);
    let paid = |events: &[engine::Event]| -> u128 {
        events
            .iter()
            .filter_map(|e| match e {
                engine::Event::TaskPaid { amount, fee, .. } => Some(amount + fee),
                _ => None,
            })
            .sum()
    };
    assert_eq!(paid(&events), 300, "{events:?}");
    w.assign(acct(2), &[tid(job, 1)]);
    let events = w.report(acct(2), vec![success(tid(job, 1), 2, 100)]);
    assert_eq!(paid(&events), 100, "{events:?}");

    // A GPU price above the job's maximum: no GPU tasks for it.
    let mut cheap = spec(1);
    cheap.max_price = 2;
    let job = submit(&mut w, cheap, declaration(false));
    refused(&mut w, acct(2), tid(job, 0), "asks 3 per fuel");
}

/// A CPU job's suitability compares CPU benchmark scores exactly as before rules 23 (older
/// chains replay to the same picks): against a fastest score of 20, a provider scoring 10 gets
/// half the speed points (400) of one scoring 20, all else equal.
#[test]
fn a_cpu_jobs_suitability_compares_benchmark_scores_as_before() {
    let mut w = World::new();
    for (p, score) in [(2, 10), (3, 20)] {
        w.register(
            acct(p),
            ProviderSpec {
                benchmark_score: score,
                ..provider_spec()
            },
        );
    }
    let job = w.submit(acct(OWNER), job_spec(1));
    let ctx = engine::Dispatch::at(w.state.now);
    let suits = |p: u8| {
        let q = &w.state.providers[&acct(p)];
        w.state.suitability(q, &w.state.jobs[&job], 20, &ctx)
    };
    assert_eq!(suits(3) - suits(2), 200);
}

// Rules 28: a claimed class counts once proven (`engine::gpu_class`).

const A: &str = "GPU A (10de:2684 550.1 Vulkan)";

fn challenge(provider: AccountId, challenge: u64, answer: engine::Hash) -> Action {
    Action::ChallengeGpuClass {
        provider,
        challenge,
        commitment: engine::class_commitment(&provider, challenge, &answer),
    }
}

#[track_caller]
fn invalid_check(w: &mut World, who: AccountId, action: Action, why: &str) {
    let rejection = w.act_rejected(who, action);
    assert!(
        matches!(&rejection, Rejection::InvalidClassCheck(says) if says.contains(why)),
        "{rejection}"
    );
}

#[test]
fn the_first_of_a_class_founds_it_and_a_member_proves_the_next() {
    let mut w = World::new();
    let events = w.act(
        acct(2),
        Action::RegisterGpuProvider {
            spec: gpu_provider(A),
            gpu: offer(1000),
        },
    );
    let class = w.state.gpu_class_of(&acct(2)).expect("founded");
    assert!(
        events.contains(&engine::Event::GpuClassProven {
            provider: acct(2),
            class: class.clone(),
            by: None,
        }),
        "{events:?}"
    );
    // Provider 3 claims the same class (a copy of 2's name and fingerprint would look alike).
    let events = w.act(
        acct(3),
        Action::RegisterGpuProvider {
            spec: gpu_provider(A),
            gpu: offer(1000),
        },
    );
    assert!(events.contains(&engine::Event::GpuClassPending {
        provider: acct(3),
        class: class.clone(),
    }));
    assert_eq!(w.state.gpu_class_of(&acct(3)), None);

    // A float job: 2 pins the class; 3 takes none of it until proven, but takes integer work.
    let mut two = spec(1);
    two.redundancy = Redundancy::Fixed {
        quorum: 2,
        max_results: 2,
    };
    let float = submit(&mut w, two, declaration(true));
    let integer = submit(&mut w, spec(1), declaration(false));
    w.assign(acct(2), &[tid(float, 0)]);
    assert_eq!(w.state.pick(acct(3), 8), vec![tid(integer, 0)]);
    refused(&mut w, acct(3), tid(float, 0), "not proven yet");

    // 2 checks 3 with a challenge, committed to its own answer; 3 answers the same.
    let answer = hash(0x31);
    let events = w.act(acct(2), challenge(acct(3), 99, answer));
    assert_eq!(
        events,
        vec![engine::Event::GpuClassChallenged {
            provider: acct(3),
            checker: acct(2),
            challenge: 99,
        }]
    );
    let open = w.state.gpu_class_pending(&acct(3)).unwrap();
    assert_eq!(
        open.challenge.as_ref().unwrap().due(),
        w.time + engine::CLASS_ANSWER_MS
    );
    w.time += 1000;
    let events = w.act(acct(3), Action::AnswerGpuClass { answer });
    assert_eq!(
        events,
        vec![engine::Event::GpuClassProven {
            provider: acct(3),
            class: class.clone(),
            by: Some(acct(2)),
        }]
    );
    assert_eq!(w.state.gpu_class_of(&acct(3)), Some(class.clone()));
    assert!(w.state.gpu_class_pending(&acct(3)).is_none());
    assert!(w.state.pick(acct(3), 8).contains(&tid(float, 0)));

    // Registering again with the same class keeps it proven.
    let events = w.act(
        acct(3),
        Action::RegisterGpuProvider {
            spec: gpu_provider(A),
            gpu: offer(2000),
        },
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, engine::Event::GpuClassPending { .. })),
        "{events:?}"
    );
    assert_eq!(w.state.gpu_class_of(&acct(3)), Some(class));
    // Another fingerprint is another class, which 3 founds; withdrawing the offer drops it.
    w.act(
        acct(3),
        Action::RegisterGpuProvider {
            spec: gpu_provider(A),
            gpu: GpuOffer {
                fingerprint: hash(0xf3),
                ..offer(1000)
            },
        },
    );
    let other = w.state.gpu_class_of(&acct(3)).unwrap();
    assert!(other.contains("fingerprint f3f3"), "{other}");
    w.register(acct(3), gpu_provider(A));
    assert_eq!(w.state.gpu_class_of(&acct(3)), None);
    assert!(!w.state.gpu_classes().proven.contains_key(&acct(3)));
}

#[test]
fn a_wrong_or_late_answer_fails_the_check_and_each_member_checks_once() {
    let mut w = World::new();
    for p in [2, 3, 4] {
        register_gpu(&mut w, acct(p), A, 1000);
    }
    prove(&mut w, acct(2), acct(3));
    // 4 is pending; 2 and 3 are members.
    let events = w.act(acct(2), challenge(acct(4), 5, hash(0x41)));
    assert_eq!(events.len(), 1);
    // One check at a time, until it is due.
    invalid_check(
        &mut w,
        acct(3),
        challenge(acct(4), 6, hash(0x41)),
        "is answering",
    );
    // A wrong answer: the check failed, 4 stays pending.
    let events = w.act(acct(4), Action::AnswerGpuClass { answer: hash(0x42) });
    assert_eq!(
        events,
        vec![engine::Event::GpuClassCheckFailed {
            provider: acct(4),
            checker: acct(2),
        }]
    );
    assert_eq!(w.state.gpu_class_of(&acct(4)), None);
    invalid_check(
        &mut w,
        acct(4),
        Action::AnswerGpuClass { answer: hash(0x41) },
        "no open class check",
    );
    // 2 checked 4 already; 3 may.
    invalid_check(
        &mut w,
        acct(2),
        challenge(acct(4), 8, hash(0x41)),
        "checked",
    );
    w.act(acct(3), challenge(acct(4), 9, hash(0x43)));
    // Too late: refused, and the check stays open until another member replaces it.
    w.time += engine::CLASS_ANSWER_MS;
    invalid_check(
        &mut w,
        acct(4),
        Action::AnswerGpuClass { answer: hash(0x43) },
        "was due at",
    );
    assert_eq!(w.state.gpu_class_of(&acct(4)), None);
    // Registering again starts the claim over: 2 may check once more, and 4 passes.
    register_gpu(&mut w, acct(4), A, 1000);
    assert!(
        w.state
            .gpu_class_pending(&acct(4))
            .unwrap()
            .checked_by
            .is_empty()
    );
    prove(&mut w, acct(2), acct(4));
}

#[test]
fn only_an_active_proven_member_of_another_operator_may_check() {
    let mut w = World::new();
    let with_operator = |operator: u8| Action::RegisterGpuProvider {
        spec: ProviderSpec {
            operator: Some(acct(operator)),
            ..gpu_provider(A)
        },
        gpu: offer(1000),
    };
    register_gpu(&mut w, acct(2), "GPU B", 1000);
    register_gpu(&mut w, acct(3), A, 1000);
    register_gpu(&mut w, acct(4), A, 1000);
    // 5 runs for 3's operator: nobody else could check it, so it founds the class too.
    w.act(acct(5), with_operator(3));
    assert_eq!(w.state.gpu_classes().proven[&acct(5)].by, None);
    // 6 runs for 4's operator: 3 and 5 may check it.
    w.act(acct(6), with_operator(4));
    assert!(w.state.gpu_class_pending(&acct(6)).is_some());
    let before = w.state.hash();
    // Of another class, pending itself, a stranger, the provider itself.
    invalid_check(&mut w, acct(2), challenge(acct(4), 1, hash(1)), "proven");
    invalid_check(&mut w, acct(6), challenge(acct(4), 1, hash(1)), "proven");
    invalid_check(&mut w, acct(9), challenge(acct(4), 1, hash(1)), "proven");
    invalid_check(&mut w, acct(4), challenge(acct(4), 1, hash(1)), "proven");
    // Nobody waits: a founder, or an account without a claim.
    invalid_check(
        &mut w,
        acct(4),
        challenge(acct(3), 1, hash(1)),
        "no class waiting",
    );
    invalid_check(
        &mut w,
        acct(3),
        challenge(acct(9), 1, hash(1)),
        "no class waiting",
    );
    assert_eq!(w.state.hash(), before);
    // Once proven, 4 still may not check its own operator's 6.
    prove(&mut w, acct(5), acct(4));
    invalid_check(
        &mut w,
        acct(4),
        challenge(acct(6), 1, hash(1)),
        "another operator",
    );
    // A member that left checks nobody, and nobody checks a provider that left.
    w.act(acct(3), Action::LeaveProvider);
    invalid_check(&mut w, acct(3), challenge(acct(6), 1, hash(1)), "active");
    w.act(acct(6), Action::LeaveProvider);
    invalid_check(
        &mut w,
        acct(5),
        challenge(acct(6), 1, hash(1)),
        "not active",
    );
    w.act(acct(6), with_operator(4));
    prove(&mut w, acct(5), acct(6));
}

#[test]
fn a_claim_gets_at_most_three_checks_and_they_pay_no_fee_per_action() {
    let mut genesis = ledger_genesis(acct(99));
    genesis.action_fee = 2;
    genesis.params.min_stake = 0;
    let mut w = World::with_genesis(&genesis);
    for p in [2, 3, 5, 6, 7, 4] {
        register_gpu(&mut w, acct(p), A, 1000);
    }
    // 2 founded the class; 3, 5, 6 and 7 are proven by its checks, 4 waits.
    for p in [3, 5, 6, 7] {
        prove(&mut w, acct(2), acct(p));
    }
    let balances = |w: &World| [2, 3, 4, 5, 6, 7].map(|p| w.state.balance(&acct(p)));
    let before = balances(&w);
    for (n, checker) in [2, 3, 5].into_iter().enumerate() {
        w.act(acct(checker), challenge(acct(4), n as u64, hash(0x50)));
        let events = w.act(acct(4), Action::AnswerGpuClass { answer: hash(0x51) });
        assert!(
            matches!(events[..], [engine::Event::GpuClassCheckFailed { .. }]),
            "{events:?}"
        );
    }
    assert_eq!(balances(&w), before, "class checks and answers are free");
    invalid_check(
        &mut w,
        acct(6),
        challenge(acct(4), 9, hash(0x50)),
        "had its 3 checks",
    );
    // Registering again (which pays) starts the claim over.
    register_gpu(&mut w, acct(4), A, 1000);
    prove(&mut w, acct(7), acct(4));
}

#[test]
fn before_rules_28_every_offer_counts_at_once_and_checks_are_refused() {
    let mut w = World::new().under_rules(27);
    register_gpu(&mut w, acct(2), A, 1000);
    register_gpu(&mut w, acct(3), A, 1000);
    assert_eq!(
        w.state.gpu_class_of(&acct(2)),
        w.state.gpu_class_of(&acct(3))
    );
    assert!(w.state.gpu_classes().proven.is_empty());
    for (who, action) in [
        (acct(2), challenge(acct(3), 1, hash(1))),
        (acct(3), Action::AnswerGpuClass { answer: hash(1) }),
    ] {
        let rejection = w.act_rejected(who, action);
        assert!(
            matches!(rejection, Rejection::NeedsRules { needs: 28, .. }),
            "{rejection}"
        );
    }
}

#[test]
fn proven_and_pending_claims_are_part_of_the_state_hash() {
    let mut a = World::new();
    let mut b = World::new();
    for w in [&mut a, &mut b] {
        register_gpu(w, acct(2), A, 1000);
        register_gpu(w, acct(3), A, 1000);
    }
    assert_eq!(a.state.hash(), b.state.hash());
    a.act(acct(2), challenge(acct(3), 1, hash(1)));
    b.act(acct(2), challenge(acct(3), 2, hash(1)));
    assert_ne!(a.state.hash(), b.state.hash());
}
