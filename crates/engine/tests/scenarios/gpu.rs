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
fn register_gpu(w: &mut World, who: AccountId, class: &str, fuel_per_ms: u64) {
    w.act(
        who,
        Action::RegisterGpuProvider {
            spec: gpu_provider(class),
            gpu: offer(fuel_per_ms),
        },
    );
}

/// `n` tasks, each with an input `data`.
fn spec(n: usize) -> JobSpec {
    let mut spec = job_spec(n);
    for (i, task) in spec.tasks.iter_mut().enumerate() {
        task.inputs.push(InputFile {
            name: "data".into(),
            hash: hash(0x40 + i as u8),
        });
    }
    spec
}

fn declaration(one_class: bool) -> GpuJob {
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
