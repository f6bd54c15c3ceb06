//! Property tests over random command sequences.
//!
//! Each case drives a fresh [`State`] with four provider registrations and then up to 60 random
//! steps — providers (re-)registering, leaving and getting lost, jobs being submitted, assigned (what
//! `pick_tasks` offers, queued tasks chosen at random, or a random and mostly invalid list),
//! reported on, expired and cancelled — with nonces that are sometimes stale and a clock that
//! sometimes goes backwards. After every step it checks that a rejection changed nothing, that
//! events agree with the change, and that the state's structural invariants hold; at the end, that
//! replaying the accepted entries on a fresh state gives the same events and the same hash, and that
//! the state survives a JSON round trip.

use crate::support::{acct, entry, hash, signed, tid};
use engine::{
    AccountId, Action, Aggregate, EngineConfig, Entry, Event, FaucetParams, Genesis, Input,
    JobSpec, JobStatus, LeaderCommand, LedgerParams, Limits, OutputSource, ProviderSpec,
    ProviderStatus, ReduceSpec, Redundancy, Rejection, RunOutcome, SlashParams, State, TaskId,
    TaskOutcome, TaskReport, TaskSpec, TaskState, Time, VerifyParams,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;
use std::collections::{BTreeMap, BTreeSet};

const MIB: u64 = 1 << 20;

/// Which task a report is about.
#[derive(Clone, Debug)]
enum Pick {
    /// The n-th (modulo) task the reporting provider holds; a random one if it holds none.
    Held(u8),
    /// Job (modulo one past the last id, so 0 and the next id are unknown) and index (0..7).
    Any(u8, u8),
}

#[derive(Clone, Debug)]
enum Op {
    Register {
        p: u8,
        slots: u32,
        memory: u64,
        price: u128,
        /// Declares operator 30, which other providers may share.
        shared_operator: bool,
    },
    Leave {
        p: u8,
    },
    /// Rules 28: `checker` checks `p`'s claim to its GPU class with `challenge`, committed to
    /// what every device of the simulation answers ([`device_answer`]).
    ChallengeClass {
        checker: u8,
        p: u8,
        challenge: u8,
    },
    /// Rules 28: `p` answers its open check as if it had been given `challenge` (right exactly
    /// when that is the open one's).
    AnswerClass {
        p: u8,
        challenge: u8,
    },
    Lost {
        p: u8,
    },
    Submit {
        owner: u8,
        tasks: usize,
        reduce: bool,
        memory: u64,
        reduce_memory: u64,
        max_price: u128,
        deadline_in: i64,
        redundancy: u8,
    },
    /// Assign what `pick_tasks` offers (an empty pick is sent as an empty, invalid, list).
    AssignPicked {
        p: u8,
        max: u32,
    },
    AssignRandom {
        p: u8,
        tasks: Vec<(u8, u8)>,
    },
    /// Assign queued tasks (the n-th, modulo, of the queue): valid unless they do not fit, are
    /// listed twice or exceed the provider's free slots.
    AssignQueued {
        p: u8,
        picks: Vec<u8>,
    },
    Report {
        /// Whether the reporter is (the p-th, modulo) one of the providers that hold tasks, if any.
        holder: bool,
        p: u8,
        /// What to report on, how the run ended, and whether a successful run lies about its output.
        reports: Vec<(Pick, TaskOutcome, bool)>,
    },
    Expire {
        job: u8,
    },
    /// Time out the provider's overdue runs (`all`), or some of its runs whether due or not.
    TimeOut {
        p: u8,
        all: bool,
        picks: Vec<u8>,
    },
    /// Speculate on the stragglers (`all`), or on some running tasks whether straggling or not.
    Speculate {
        all: bool,
        picks: Vec<u8>,
    },
    /// Rules 5: the leader's beacon as it is due (leader `seed` 0 or 1: a leader change replaces
    /// the commitment), or a forged reveal (`forge`) that must be refused.
    Beacon {
        seed: u8,
        forge: bool,
    },
    Cancel {
        by_owner: bool,
        who: u8,
        job: u8,
    },
    /// Rules 13: an owner (or anyone) seals a job to another provider (or to one it already
    /// has).
    SealTo {
        by_owner: bool,
        who: u8,
        job: u8,
        p: u8,
    },
    /// Rules 10: an owner (or anyone) releases a job's storage.
    ReleaseJob {
        by_owner: bool,
        who: u8,
        job: u8,
    },
    /// Rules 10: the leader releases the storage of jobs over for the retention time (`all`) or
    /// of any jobs.
    ReleaseStorage {
        all: bool,
        picks: Vec<u8>,
    },
    Transfer {
        from: u8,
        to: u8,
        amount: u128,
    },
    Faucet {
        who: u8,
    },
    /// Rules 24: a provider announces whether (and why: a bitmask) it is suspended and its
    /// carbon intensity (above the most allowed now and then).
    Announce {
        p: u8,
        reasons: u8,
        grams: Option<u32>,
    },
    Stake {
        who: u8,
        amount: u128,
    },
    Unstake {
        who: u8,
        amount: u128,
    },
    Release {
        who: u8,
    },
    /// Rules 25: `anyone(who)` backs `provider(p)`.
    Delegate {
        who: u8,
        p: u8,
        amount: u128,
    },
    /// Rules 25: `anyone(who)` takes back `amount` (or, with `all`, its whole delegation).
    Undelegate {
        who: u8,
        p: u8,
        amount: u128,
        all: bool,
    },
    WithdrawRewards {
        who: u8,
        p: u8,
    },
    SetCommission {
        p: u8,
        bps: u32,
    },
    /// Rules 25: `anyone(who)` proposes a change of kind `kind` with `deposit`.
    Propose {
        who: u8,
        kind: u8,
        value: u32,
        deposit: u128,
        /// Rules 26: its changes wait this long after the vote.
        delay_ms: Option<u64>,
    },
    /// Rules 25: `anyone(who)` votes on the proposal picked by `proposal`.
    Vote {
        who: u8,
        proposal: u8,
        option: u8,
    },
    /// Rules 26: `requester(who)` (or, now and then, `anyone(who)`) reserves `slots` slots (in
    /// the providers' region when `region`) for `periods` periods of `period_ms` at `price` per
    /// slot per period.
    Reserve {
        who: u8,
        slots: u32,
        periods: u32,
        period_ms: u64,
        price: u128,
        region: bool,
    },
    /// Rules 26: `provider(p)` accepts `slots` of the reservation picked by `pick`.
    AcceptReservation {
        p: u8,
        pick: u8,
        slots: u32,
    },
    /// Rules 26: `anyone(who)` cancels the reservation picked by `pick` (mostly its owner).
    CancelReservation {
        by_owner: bool,
        who: u8,
        pick: u8,
    },
    /// Rules 26: `provider(p)` leaves the reservation picked by `pick`.
    LeaveReservation {
        p: u8,
        pick: u8,
    },
    /// Rules 26: the leader's settlement entry (refused unless something is due).
    SettleReservations,
    /// Rules 26: the leader applies a validator change a passed proposal queued.
    ChangeValidators,
    /// Evidence that `anyone(who)` signed two headers at `height` (the same header twice when
    /// `same`: not evidence). Signatures are the shell's to check, not the engine's.
    Equivocate {
        who: u8,
        height: u8,
        same: bool,
    },
    /// `anyone(who)` votes to add `anyone(target)` (at address slot `target`) or remove it.
    ValidatorVote {
        who: u8,
        target: u8,
        add: bool,
    },
}

#[derive(Clone, Debug)]
enum Nonce {
    Next,
    /// The last nonce minus this: always a replay.
    Stale(u64),
    /// Skips ahead by this much.
    Skip(u64),
}

#[derive(Clone, Debug)]
struct Step {
    op: Op,
    /// Added to the previous entry's time (not the state's): may go backwards.
    dt: i64,
    nonce: Nonce,
}

fn provider(p: u8) -> AccountId {
    acct(1 + p % 4)
}

/// Rules 25 and 27: an account a pool may back: a provider, or account 13, a validator that
/// is no provider.
fn backed(p: u8) -> AccountId {
    if p % 5 == 4 { acct(13) } else { provider(p) }
}

fn requester(n: u8) -> AccountId {
    // Mostly dedicated requesters; sometimes a provider submits too.
    [acct(11), acct(12), acct(13), acct(1), acct(2)][n as usize % 5]
}

/// Any account the ledger operations pick from: providers, requesters and the treasury.
fn anyone(n: u8) -> AccountId {
    [
        acct(1),
        acct(2),
        acct(3),
        acct(4),
        acct(11),
        acct(12),
        acct(13),
        TREASURY,
    ][n as usize % 8]
}

const TREASURY: AccountId = AccountId([0xEE; 32]);
/// The minimum stake of the test network.
const MIN_STAKE: u128 = 50;

/// A network with fees, stake and a faucet, and uneven initial wealth: requester 11 is rich,
/// 12 can afford a few jobs, 13 starts with nothing; providers start with enough to stake.
fn genesis() -> Genesis {
    genesis_of(true)
}

/// The property tests' genesis, with or without a validator set (a single coordinator's chain).
fn genesis_of(validators: bool) -> Genesis {
    let mut allocations = BTreeMap::new();
    allocations.insert(acct(11), 10_000_000);
    allocations.insert(acct(12), 40_000);
    for p in 1..=4 {
        allocations.insert(acct(p), 200);
    }
    Genesis {
        params: LedgerParams {
            chain_id: "props".into(),
            treasury: TREASURY,
            fee_bps: 700,
            min_stake: MIN_STAKE,
            slash: SlashParams {
                fraction_bps: 5_000,
                requester_bps: 5_000,
                treasury_bps: 2_500,
            },
            unbonding_delay_ms: 40,
            faucet: Some(FaucetParams { amount: 30_000 }),
        },
        allocations,
        engine: config(),
        // Trust comes after one verified result and a third of lone results are spot-checked,
        // so that short sequences reach every branch.
        verification: VerifyParams {
            trust_after: 1,
            spot_check_bps: 3_000,
            ..VerifyParams::default()
        },
        // Two providers and a requester are validators too: equivocation takes half of
        // whatever stake they have then, provider stake included.
        validators: if !validators {
            engine::Validators::default()
        } else {
            engine::Validators {
                equivocation_bps: 5_000,
                ..engine::Validators::new(engine::ValidatorSet {
                    validators: [(1, 100), (2, 0), (13, 300)]
                        .into_iter()
                        .map(|(n, stake)| engine::Validator {
                            account: acct(n),
                            power: 1,
                            address: format!("http://10.0.0.{n}:7700"),
                            stake,
                        })
                        .collect(),
                })
            }
        },
        // Half the cases run the current rules (with validators), half the first ones.
        rules: if validators {
            engine::RULES
        } else {
            engine::FIRST_RULES
        },
        // Rules 8: every signed action but reports and the faucet costs 3 base units.
        action_fee: if validators { 3 } else { 0 },
        // Rules 10: storage costs 2 base units per KiB, is kept 50 ms after a job ends, and a
        // task may reserve 12 bytes of output (reports return 8).
        storage: validators.then_some(engine::StorageParams {
            deposit_per_kib: 2,
            retention_ms: 50,
            max_output_bytes: 12,
        }),
        carbon: None,
        // Rules 27: the validators' share of fees is paid out every second (so the long pauses
        // reach payouts), and a commission may rise every 50 ms.
        staking: validators.then(|| engine::StakingParams {
            validator_payout_every_ms: 1_000,
            commission_period_ms: 50,
            ..engine::StakingParams::for_min_stake(MIN_STAKE)
        }),
    }
}

/// Rules 28: what a simulated device answers to a class check's challenge (all alike).
fn device_answer(challenge: u64) -> engine::Hash {
    engine::Hash::of(&challenge.to_le_bytes())
}

fn amount() -> impl Strategy<Value = u128> {
    prop_oneof![
        4 => 1..100u128,
        2 => 100..50_000u128,
        1 => Just(0u128),
        1 => Just(u128::MAX),
    ]
}

/// Rules 25: proposals and votes (the voting period is a second on this network).
fn gov_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (any::<u8>(), 0..9u8, 0..12_000u32, prop_oneof![3 => 50..200u128, 1 => amount()], prop_oneof![2 => Just(None), 1 => (0..4_000u64).prop_map(Some)])
            .prop_map(|(who, kind, value, deposit, delay_ms)| Op::Propose { who, kind, value, deposit, delay_ms }),
        3 => (any::<u8>(), any::<u8>(), 0..4u8)
            .prop_map(|(who, proposal, option)| Op::Vote { who, proposal, option }),
    ]
}

/// Rules 26: reservations, leases and their settlement.
fn reserve_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<u8>(), prop_oneof![9 => 1..4u32, 1 => 0..100u32], prop_oneof![9 => 1..4u32, 1 => Just(0u32)], prop_oneof![Just(1_000u64), Just(2_000u64), Just(600_000u64)], prop_oneof![6 => 1..300u128, 1 => amount()], any::<bool>())
            .prop_map(|(who, slots, periods, period_ms, price, region)| Op::Reserve { who, slots, periods, period_ms, price, region }),
        3 => (0..4u8, any::<u8>(), prop_oneof![9 => 1..3u32, 1 => 0..6u32])
            .prop_map(|(p, pick, slots)| Op::AcceptReservation { p, pick, slots }),
        1 => (prop_oneof![4 => Just(true), 1 => Just(false)], any::<u8>(), any::<u8>())
            .prop_map(|(by_owner, who, pick)| Op::CancelReservation { by_owner, who, pick }),
        1 => (0..4u8, any::<u8>()).prop_map(|(p, pick)| Op::LeaveReservation { p, pick }),
        1 => Just(Op::SettleReservations),
        1 => Just(Op::ChangeValidators),
    ]
}

fn ledger_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (any::<u8>(), any::<u8>(), amount())
            .prop_map(|(from, to, amount)| Op::Transfer { from, to, amount }),
        1 => any::<u8>().prop_map(|who| Op::Faucet { who }),
        2 => (0..4u8, amount()).prop_map(|(who, amount)| Op::Stake { who, amount }),
        1 => (0..4u8, amount()).prop_map(|(who, amount)| Op::Unstake { who, amount }),
        1 => any::<u8>().prop_map(|who| Op::Release { who }),
        3 => (any::<u8>(), 0..5u8, prop_oneof![3 => 1..400u128, 1 => amount()])
            .prop_map(|(who, p, amount)| Op::Delegate { who, p, amount }),
        2 => (any::<u8>(), 0..5u8, amount(), any::<bool>())
            .prop_map(|(who, p, amount, all)| Op::Undelegate { who, p, amount, all }),
        1 => (any::<u8>(), 0..5u8).prop_map(|(who, p)| Op::WithdrawRewards { who, p }),
        1 => (0..5u8, prop_oneof![3 => 0..6_000u32, 1 => Just(u32::MAX)])
            .prop_map(|(p, bps)| Op::SetCommission { p, bps }),
        1 => (any::<u8>(), 1..4u8, prop_oneof![5 => Just(false), 1 => Just(true)])
            .prop_map(|(who, height, same)| Op::Equivocate { who, height, same }),
        2 => (any::<u8>(), any::<u8>(), any::<bool>())
            .prop_map(|(who, target, add)| Op::ValidatorVote { who, target, add }),
    ]
}

fn outcome() -> impl Strategy<Value = TaskOutcome> {
    prop_oneof![
        8 => Just(TaskOutcome::Success),
        1 => Just(TaskOutcome::Exit(1)),
        1 => Just(TaskOutcome::Exit(10)),
        1 => Just(TaskOutcome::OutOfFuel),
        1 => Just(TaskOutcome::Trap("unreachable".into())),
    ]
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        6 => any::<u8>().prop_map(Pick::Held),
        1 => (any::<u8>(), any::<u8>()).prop_map(|(j, i)| Pick::Any(j, i)),
    ]
}

/// Provider `p` (re-)registers; one spec in ten is invalid (no slots).
fn register(p: impl Strategy<Value = u8>) -> impl Strategy<Value = Op> {
    (
        p,
        prop_oneof![9 => 1..=4u32, 1 => Just(0u32)],
        select(vec![32 * MIB, 128 * MIB, 1024 * MIB]),
        0..4u128,
        prop_oneof![5 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(p, slots, memory, price, shared_operator)| Op::Register {
            p,
            slots,
            memory,
            price,
            shared_operator,
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => register(0..4u8),
        1 => (0..4u8).prop_map(|p| Op::Leave { p }),
        // Mostly between providers 1 and 3 (who claim one class).
        2 => (
            prop_oneof![4 => prop_oneof![Just(1u8), Just(3u8)], 1 => 0..4u8],
            prop_oneof![4 => prop_oneof![Just(1u8), Just(3u8)], 1 => 0..4u8],
            0..2u8,
        )
            .prop_map(|(checker, p, challenge)| Op::ChallengeClass { checker, p, challenge }),
        2 => (prop_oneof![4 => prop_oneof![Just(1u8), Just(3u8)], 1 => 0..4u8], 0..2u8)
            .prop_map(|(p, challenge)| Op::AnswerClass { p, challenge }),
        1 => (0..4u8).prop_map(|p| Op::Lost { p }),
        4 => (
            any::<u8>(),
            prop_oneof![6 => 1..=2usize, 3 => 3..=5usize, 1 => Just(0usize)],
            any::<bool>(),
            select(vec![16 * MIB, 64 * MIB, 256 * MIB]),
            select(vec![16 * MIB, 512 * MIB]),
            prop_oneof![3 => Just(10u128), 1 => 0..4u128],
            prop_oneof![9 => 1..400i64, 1 => -20..=0i64],
            any::<u8>(),
        )
            .prop_map(
                |(owner, tasks, reduce, memory, reduce_memory, max_price, deadline_in, redundancy)| {
                    Op::Submit {
                        owner,
                        tasks,
                        reduce,
                        memory,
                        reduce_memory,
                        max_price,
                        deadline_in,
                        redundancy,
                    }
                }
            ),
        14 => (0..4u8, prop_oneof![9 => 1..6u32, 1 => Just(0u32)])
            .prop_map(|(p, max)| Op::AssignPicked { p, max }),
        1 => (0..4u8, proptest::collection::vec((any::<u8>(), any::<u8>()), 0..4))
            .prop_map(|(p, tasks)| Op::AssignRandom { p, tasks }),
        2 => (0..4u8, proptest::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(p, picks)| Op::AssignQueued { p, picks }),
        16 => (
            prop_oneof![4 => Just(true), 1 => Just(false)],
            0..4u8,
            prop_oneof![
                9 => proptest::collection::vec((pick(), outcome(), prop_oneof![4 => Just(false), 1 => Just(true)]), 1..3),
                1 => Just(vec![]),
            ]
        )
            .prop_map(|(holder, p, reports)| Op::Report { holder, p, reports }),
        1 => any::<u8>().prop_map(|job| Op::Expire { job }),
        4 => (0..4u8, any::<bool>(), proptest::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(p, all, picks)| Op::TimeOut { p, all, picks }),
        2 => (any::<bool>(), proptest::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(all, picks)| Op::Speculate { all, picks }),
        3 => (prop_oneof![4 => Just(0u8), 1 => Just(1u8)], prop_oneof![6 => Just(false), 1 => Just(true)])
            .prop_map(|(seed, forge)| Op::Beacon { seed, forge }),
        1 => (any::<bool>(), any::<u8>(), any::<u8>())
            .prop_map(|(by_owner, who, job)| Op::Cancel { by_owner, who, job }),
        1 => (prop_oneof![4 => Just(true), 1 => Just(false)], any::<u8>(), any::<u8>(), 0..4u8)
            .prop_map(|(by_owner, who, job, p)| Op::SealTo { by_owner, who, job, p }),
        2 => (prop_oneof![4 => Just(true), 1 => Just(false)], any::<u8>(), any::<u8>())
            .prop_map(|(by_owner, who, job)| Op::ReleaseJob { by_owner, who, job }),
        1 => (prop_oneof![4 => Just(true), 1 => Just(false)], proptest::collection::vec(any::<u8>(), 1..3))
            .prop_map(|(all, picks)| Op::ReleaseStorage { all, picks }),
        3 => ledger_op(),
        3 => gov_op(),
        3 => reserve_op(),
        3 => (0..4u8, prop_oneof![2 => Just(0u8), 1 => any::<u8>()], proptest::option::of(prop_oneof![9 => 0..1000u32, 1 => 1990..2010u32]))
            .prop_map(|(p, reasons, grams)| Op::Announce { p, reasons, grams }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    step_with(op())
}

fn step_with(op: impl Strategy<Value = Op>) -> impl Strategy<Value = Step> {
    (
        op,
        // Now and then a long pause, so runs straggle (`State::straggling`).
        prop_oneof![8 => 0..30i64, 1 => -60..0i64, 1 => 6_000..12_000i64],
        prop_oneof![
            8 => Just(Nonce::Next),
            1 => (0..3u64).prop_map(Nonce::Stale),
            1 => (1..5u64).prop_map(Nonce::Skip),
        ],
    )
        .prop_map(|(op, dt, nonce)| Step { op, dt, nonce })
}

/// A job id drawn from `sel`: usually an existing job, sometimes 0 or the next id (both unknown).
fn job_id(s: &State, sel: u8) -> u64 {
    u64::from(sel) % (s.next_job + 1)
}

fn random_task(s: &State, job: u8, index: u8) -> TaskId {
    tid(job_id(s, job), u32::from(index % 7))
}

/// Trust-the-first, 2-of-3 voting, or (most often) the adaptive policy.
fn redundancy_of(n: u8) -> Redundancy {
    match n % 4 {
        0 => Redundancy::Fixed {
            quorum: 1,
            max_results: 1,
        },
        1 => Redundancy::Fixed {
            quorum: 2,
            max_results: 3,
        },
        _ => Redundancy::Adaptive,
    }
}

fn job_spec(
    tasks: usize,
    reduce: bool,
    memory: u64,
    reduce_memory: u64,
    max_price: u128,
    deadline: Time,
) -> JobSpec {
    let limits = Limits {
        fuel: 1000,
        memory_bytes: memory,
        // Short, so that runs become overdue within a sequence.
        wall_ms: 20,
    };
    JobSpec {
        module: hash(0xAA),
        tasks: (0..tasks)
            .map(|i| TaskSpec {
                args: vec![i.to_string()],
                ..TaskSpec::default()
            })
            .collect(),
        limits,
        deadline,
        max_price,
        output: OutputSource::Stdout,
        redundancy: Redundancy::Adaptive,
        requirements: Default::default(),
        aggregate: if reduce {
            Aggregate::Reduce(ReduceSpec {
                module: hash(0xBB),
                args: vec![],
                limits: Limits {
                    memory_bytes: reduce_memory,
                    ..limits
                },
            })
        } else {
            Aggregate::Concat
        },
    }
}

/// What a step turned into.
struct Built {
    entry: Entry,
    /// For a signed action, whether its nonce is stale by construction.
    stale: bool,
    /// For `AssignPicked`, what `pick_tasks` offered.
    picked: Option<Vec<TaskId>>,
}

fn header(height: u8, variant: u8) -> engine::BlockHeader {
    engine::BlockHeader {
        height: u64::from(height),
        prev_hash: hash(variant),
        time: 0,
        first_seq: 1,
        last_seq: 1,
        commands_root: hash(0),
        state_hash: hash(0),
        validator: acct(1),
    }
}

fn build(s: &State, step: &Step, time: Time) -> Built {
    if let Op::Equivocate { who, height, same } = &step.op {
        let signed = |variant| engine::SignedHeader {
            header: header(*height, variant),
            signature: engine::Sig([0; 64]),
        };
        let ev = engine::Equivocation {
            validator: anyone(*who),
            first: signed(1),
            second: signed(if *same { 1 } else { 2 }),
        };
        return Built {
            entry: entry(time, Input::Evidence(Box::new(ev))),
            stale: false,
            picked: None,
        };
    }
    let action = |who: AccountId, body: Action| (who, body);
    let signed_body: Result<(AccountId, Action), LeaderCommand> = match &step.op {
        Op::Register {
            p,
            slots,
            memory,
            price,
            shared_operator,
        } => {
            let spec = ProviderSpec {
                slots: *slots,
                cores: 4,
                memory_bytes: *memory,
                // Rules 23: providers 1 and 2 declare GPUs of two classes, 3 the same as 1
                // (under rules 28 it has to prove it), and offer them (a speed, and a memory
                // that now and then is too small for the jobs' limits) unless slots is 3.
                gpu: match p % 3 {
                    1 => Some("GPU A (class a)".into()),
                    0 if *p == 3 => Some("GPU A (class a)".into()),
                    2 => Some("GPU B (class b)".into()),
                    _ => None,
                },
                benchmark_score: 1,
                region: "r".into(),
                price_per_fuel: *price,
                operator: shared_operator.then_some(acct(30)),
            };
            let body = if spec.gpu.is_some() && *slots != 3 {
                Action::RegisterGpuProvider {
                    spec,
                    gpu: engine::GpuOffer {
                        fuel_per_ms: u64::from(*slots) * 40,
                        memory_bytes: *memory,
                        // Now and then a device that computes differently under the name.
                        fingerprint: hash(u8::from(*price == 0)),
                        // A GPU price now and then above the CPU price.
                        price_per_fuel: price.saturating_add(u128::from(*slots % 2)),
                    },
                }
            } else {
                Action::RegisterProvider(spec)
            };
            Ok(action(provider(*p), body))
        }
        Op::Leave { p } => Ok(action(provider(*p), Action::LeaveProvider)),
        Op::ChallengeClass {
            checker,
            p,
            challenge,
        } => Ok(action(
            provider(*checker),
            Action::ChallengeGpuClass {
                provider: provider(*p),
                challenge: u64::from(*challenge),
                commitment: engine::class_commitment(
                    &provider(*p),
                    u64::from(*challenge),
                    &device_answer(u64::from(*challenge)),
                ),
            },
        )),
        Op::AnswerClass { p, challenge } => Ok(action(
            provider(*p),
            Action::AnswerGpuClass {
                answer: device_answer(u64::from(*challenge)),
            },
        )),
        // A validator set declares a provider lost on its validators' attestations.
        Op::Lost { p } if !s.validators.set.validators.is_empty() => {
            return Built {
                entry: entry(time, lost_input(s, provider(*p), time)),
                stale: false,
                picked: None,
            };
        }
        Op::Lost { p } => Err(LeaderCommand::ProviderLost {
            provider: provider(*p),
        }),
        Op::Submit {
            owner,
            tasks,
            reduce,
            memory,
            reduce_memory,
            max_price,
            deadline_in,
            redundancy,
        } => {
            let deadline = s.now.max(time).saturating_add_signed(*deadline_in);
            let spec = JobSpec {
                redundancy: redundancy_of(*redundancy),
                ..job_spec(
                    *tasks,
                    *reduce,
                    *memory,
                    *reduce_memory,
                    *max_price,
                    deadline,
                )
            };
            // Rules 10: a storage claim; now and then more output room than the network allows
            // (12 bytes), or less than the reports' outputs (8 bytes), or a plain submission
            // where the network takes deposits.
            let storage = engine::StorageClaim {
                input_bytes: u64::from(*owner) * 700,
                output_bytes: u64::from(*redundancy % 16),
            };
            // Rules 11: now and then options that take exit status 10 as an answer (with or
            // without 0), or an invalid list.
            let options = match *redundancy % 7 {
                0 => Some(vec![10]),
                1 => Some(vec![0, 10]),
                2 if *owner % 5 == 0 => Some(vec![200]),
                _ => None,
            };
            if let Some(success_exits) = options {
                let claimed = s.storage.params.is_some() && *redundancy % 29 != 0;
                let options = engine::JobOptions {
                    success_exits,
                    entry: (*owner % 3 == 0).then(|| "run".to_string()),
                };
                // Rules 12: now and then files too (a mount and a scratch directory, or an
                // overlapping pair, which is refused).
                let files = match *redundancy % 5 {
                    0 | 1 => Some(engine::JobFiles {
                        mounts: vec![engine::Mount {
                            path: "/usr/local/lib".into(),
                            tree: hash(*owner),
                        }],
                        scratch: Some(engine::Scratch {
                            path: if *redundancy % 5 == 0 {
                                "/tmp".into()
                            } else {
                                "/usr/local/lib/tmp".into()
                            },
                            bytes: 1 << 20,
                        }),
                    }),
                    _ => None,
                };
                let storage = claimed.then_some(storage);
                // Rules 13: now and then private, sealed to two providers (whose tasks no
                // other provider may take), or to none (refused).
                let sealing = (*redundancy % 7 < 3).then(|| engine::Sealing {
                    key_check: hash(*owner),
                    recipients: if *redundancy % 7 == 0 {
                        Vec::new()
                    } else {
                        [1u8, 2]
                            .iter()
                            .map(|p| engine::Recipient {
                                provider: provider(*p),
                                wrapped: vec![*p; 80],
                            })
                            .collect()
                    },
                    clear: vec![hash(*owner)],
                });
                Ok(action(
                    requester(*owner),
                    match (files, sealing) {
                        (files, Some(sealing)) => Action::SubmitPrivateJob {
                            spec,
                            storage,
                            options,
                            files: files.unwrap_or_default(),
                            sealing,
                        },
                        (Some(files), None) => Action::SubmitJobWithFiles {
                            spec,
                            storage,
                            options,
                            files,
                        },
                        (None, None) => Action::SubmitJobWithOptions {
                            spec,
                            storage,
                            options,
                        },
                    },
                ))
            } else if *redundancy % 11 == 3 {
                // Rules 23: now and then a GPU job (one class when the owner is odd), or one
                // whose buffer names an input its tasks lack (refused).
                let claimed = s.storage.params.is_some() && *redundancy % 29 != 0;
                let fill = if *owner % 4 == 2 {
                    engine::GpuFill::Input("missing".into())
                } else {
                    engine::GpuFill::Zeroed(64)
                };
                let gpu = engine::GpuJob {
                    entry: "main".into(),
                    workgroups: [2, 1, 1],
                    buffers: vec![engine::GpuBuffer {
                        binding: 0,
                        fill,
                        output: true,
                    }],
                    one_class: *owner % 2 == 1,
                };
                let storage = claimed.then_some(storage);
                // Rules 30: an even owner's (never one class) results agree within a
                // tolerance.
                Ok(action(
                    requester(*owner),
                    if *owner % 2 == 0 {
                        Action::SubmitGpuJobWithTolerance {
                            spec,
                            storage,
                            gpu,
                            tolerance: engine::Tolerance {
                                max_ulps: 2,
                                near_zero: 0,
                            },
                        }
                    } else {
                        Action::SubmitGpuJob { spec, storage, gpu }
                    },
                ))
            } else if s.storage.params.is_none() || *redundancy % 29 == 0 {
                Ok(action(requester(*owner), Action::SubmitJob(spec)))
            } else if *redundancy % 5 == 3 {
                // Rules 24: a job that prefers low-carbon providers.
                Ok(action(
                    requester(*owner),
                    Action::SubmitWithPreferences {
                        preferences: engine::JobPreferences {
                            prefer_low_carbon: true,
                        },
                        submission: Box::new(Action::SubmitJobWithStorage { spec, storage }),
                    },
                ))
            } else {
                Ok(action(
                    requester(*owner),
                    Action::SubmitJobWithStorage { spec, storage },
                ))
            }
        }
        Op::AssignPicked { p, max } => {
            // The provider's own fetch: the engine picks what `pick` offers.
            let who = provider(*p);
            return Built {
                entry: entry(time, fetch_input(who, s.nonce(&who) + 1, *max)),
                stale: false,
                picked: Some(s.pick_tasks(who, *max, &engine::Dispatch::at(time.max(s.now)))),
            };
        }
        Op::AssignRandom { p, tasks } => Err(LeaderCommand::AssignTasks {
            provider: provider(*p),
            tasks: tasks.iter().map(|(j, i)| random_task(s, *j, *i)).collect(),
        }),
        Op::AssignQueued { p, picks } => {
            // Rules 6 offers some replicas among the re-executions alone (trusted providers only).
            let queue: Vec<TaskId> = s
                .queue
                .union(&s.recheck)
                .chain(&s.disputes)
                .copied()
                .collect();
            let tasks = if queue.is_empty() {
                vec![]
            } else {
                picks
                    .iter()
                    .map(|k| queue[*k as usize % queue.len()])
                    .collect()
            };
            Err(LeaderCommand::AssignTasks {
                provider: provider(*p),
                tasks,
            })
        }
        Op::Report { holder, p, reports } => {
            let holders: Vec<AccountId> = s
                .providers
                .values()
                .filter(|p| !p.running.is_empty())
                .map(|p| p.id)
                .collect();
            let who = if *holder && !holders.is_empty() {
                holders[*p as usize % holders.len()]
            } else {
                provider(*p)
            };
            let held: Vec<TaskId> = s
                .providers
                .get(&who)
                .map(|p| p.running.iter().copied().collect())
                .unwrap_or_default();
            let reports = reports
                .iter()
                .enumerate()
                .map(|(n, (pick, outcome, wrong))| {
                    let task = match pick {
                        Pick::Held(k) if !held.is_empty() => held[*k as usize % held.len()],
                        Pick::Held(k) => random_task(s, *k, *k),
                        Pick::Any(j, i) => random_task(s, *j, *i),
                    };
                    TaskReport {
                        task,
                        outcome: outcome.clone(),
                        // Honest outputs agree per task; a wrong one differs from everything.
                        output_hash: if *wrong {
                            hash(0x80 | (n as u8 ^ (s.applied as u8)))
                        } else {
                            hash(((task.job as u8).wrapping_mul(8) ^ task.index as u8) & 0x7F)
                        },
                        output_size: 8,
                        fuel_used: 10,
                    }
                })
                .collect::<Vec<TaskReport>>();
            // Rules 30: a tolerant task's successes carry their outputs, two f32 values: an
            // honest one per task, a wrong one either 1 ULP off (it agrees) or far off.
            let mut reports = reports;
            let outputs: Vec<Option<engine::Output>> = reports
                .iter_mut()
                .enumerate()
                .map(|(n, r)| {
                    if !s.is_tolerant(r.task) || r.outcome != TaskOutcome::Success {
                        return None;
                    }
                    let v =
                        1.0 + f32::from((r.task.job as u8).wrapping_mul(8) ^ r.task.index as u8);
                    let wrong = r.output_hash.0[0] & 0x80 != 0;
                    let first = match (wrong, n % 2) {
                        (false, _) => v,
                        (true, 0) => f32::from_bits(v.to_bits() + 1),
                        (true, _) => v + 100.0,
                    };
                    let bytes: Vec<u8> = [first, -v].iter().flat_map(|x| x.to_le_bytes()).collect();
                    r.output_hash = engine::Hash::of(&bytes);
                    r.output_size = bytes.len() as u64;
                    Some(engine::Output(bytes))
                })
                .collect();
            // Rules 24: most reports carry their runs' energy; now and then a figure above the
            // most one run may use (refused).
            match s.applied % 4 {
                kind if kind != 0 && outputs.iter().any(Option::is_some) => Ok(action(
                    who,
                    Action::ReportResultsWithOutputs {
                        energy: vec![None; reports.len()],
                        reports,
                        outputs,
                    },
                )),
                0 => Ok(action(who, Action::ReportResults(reports))),
                kind => {
                    let energy = (0..reports.len())
                        .map(|n| {
                            (n != 1 || !s.applied.is_multiple_of(3)).then_some(
                                engine::EnergyReport {
                                    millijoules: if kind == 3 && n == 0 {
                                        engine::energy::MAX_RUN_MILLIJOULES + 1
                                    } else {
                                        1_000 * (n as u64 + 1) + s.applied
                                    },
                                    method: if (n as u64 + s.applied).is_multiple_of(2) {
                                        engine::EnergyMethod::Modelled
                                    } else {
                                        engine::EnergyMethod::Measured
                                    },
                                },
                            )
                        })
                        .collect();
                    Ok(action(
                        who,
                        Action::ReportMeteredResults { reports, energy },
                    ))
                }
            }
        }
        Op::Expire { job } => Err(LeaderCommand::ExpireJob {
            job: job_id(s, *job),
        }),
        Op::TimeOut { p, all, picks } => {
            let who = provider(*p);
            let held: Vec<TaskId> = s
                .providers
                .get(&who)
                .map(|p| p.running.iter().copied().collect())
                .unwrap_or_default();
            let tasks = if *all {
                s.overdue_runs(time)
                    .into_iter()
                    .find(|(p, _)| *p == who)
                    .map(|(_, t)| t)
                    .unwrap_or_default()
            } else {
                picks
                    .iter()
                    .filter_map(|i| held.get(usize::from(*i) % held.len().max(1)).copied())
                    .collect()
            };
            Err(LeaderCommand::TimeOutRuns {
                provider: who,
                tasks,
            })
        }
        Op::Speculate { all, picks } => {
            let running: Vec<TaskId> = s
                .providers
                .values()
                .flat_map(|p| p.running.iter().copied())
                .collect();
            let tasks = if *all {
                s.stragglers(time)
            } else {
                picks
                    .iter()
                    .filter_map(|i| running.get(usize::from(*i) % running.len().max(1)).copied())
                    .collect()
            };
            Err(LeaderCommand::Speculate { tasks })
        }
        Op::Beacon { seed, forge } => {
            let seed = [*seed; 32];
            match s.beacon_due(&seed) {
                Some(LeaderCommand::Beacon { commit, .. }) if *forge => {
                    Err(LeaderCommand::Beacon {
                        reveal: Some(commit),
                        commit,
                    })
                }
                Some(command) => Err(command),
                None => Err(LeaderCommand::Beacon {
                    reveal: None,
                    commit: engine::Hash::of(&seed),
                }),
            }
        }
        Op::Cancel { by_owner, who, job } => {
            let job = job_id(s, *job);
            let who = match s.jobs.get(&job) {
                Some(j) if *by_owner => j.owner,
                _ => requester(*who),
            };
            Ok(action(who, Action::CancelJob(job)))
        }
        Op::SealTo {
            by_owner,
            who,
            job,
            p,
        } => {
            let job = job_id(s, *job);
            let who = match s.jobs.get(&job) {
                Some(j) if *by_owner => j.owner,
                _ => requester(*who),
            };
            Ok(action(
                who,
                Action::SealJobTo {
                    job,
                    recipients: vec![engine::Recipient {
                        provider: provider(*p),
                        wrapped: vec![*p; 80],
                    }],
                },
            ))
        }
        Op::ReleaseJob { by_owner, who, job } => {
            let job = job_id(s, *job);
            let who = match s.jobs.get(&job) {
                Some(j) if *by_owner => j.owner,
                _ => requester(*who),
            };
            Ok(action(who, Action::ReleaseJob(job)))
        }
        Op::ReleaseStorage { all, picks } => {
            let releasable = s.releasable_storage(time.max(s.now));
            let jobs = if *all && !releasable.is_empty() {
                releasable
            } else {
                picks.iter().map(|j| job_id(s, *j)).collect()
            };
            Err(LeaderCommand::ReleaseStorage { jobs })
        }
        Op::Transfer { from, to, amount } => Ok(action(
            anyone(*from),
            Action::Transfer {
                to: anyone(*to),
                amount: *amount,
            },
        )),
        Op::Faucet { who } => Ok(action(anyone(*who), Action::Faucet)),
        Op::Announce { p, reasons, grams } => {
            let mut suspended: Vec<engine::Suspension> = engine::Suspension::ALL
                .iter()
                .enumerate()
                .filter(|(n, _)| reasons & (1 << n) != 0)
                .map(|(_, r)| *r)
                .collect();
            // Bit 7: a reason given twice (refused).
            if reasons & 0x80 != 0 && !suspended.is_empty() {
                suspended.push(suspended[0]);
            }
            Ok(action(
                provider(*p),
                Action::Announce(engine::Announcement {
                    suspended,
                    grams_per_kwh: *grams,
                }),
            ))
        }
        Op::Stake { who, amount } => Ok(action(provider(*who), Action::Stake { amount: *amount })),
        Op::Unstake { who, amount } => {
            Ok(action(provider(*who), Action::Unstake { amount: *amount }))
        }
        Op::Reserve {
            who,
            slots,
            periods,
            period_ms,
            price,
            region,
        } => Ok(action(
            // Mostly those who submit jobs, so that leases cover tasks.
            if *who < 200 {
                requester(*who)
            } else {
                anyone(*who)
            },
            Action::Reserve(engine::reserve::ReservationSpec {
                slots: *slots,
                cores: 0,
                memory_bytes: 0,
                gpu: false,
                region: region.then(|| "r".to_string()),
                period_ms: *period_ms,
                periods: *periods,
                price_per_slot: *price,
            }),
        )),
        Op::AcceptReservation { p, pick, slots } => Ok(action(
            provider(*p),
            Action::AcceptReservation {
                reservation: pick_reservation(s, *pick),
                slots: *slots,
            },
        )),
        Op::CancelReservation {
            by_owner,
            who,
            pick,
        } => {
            let reservation = pick_reservation(s, *pick);
            let owner = s
                .reservations
                .reservations
                .get(&reservation)
                .map(|r| r.owner);
            let who = match owner {
                Some(owner) if *by_owner => owner,
                _ => anyone(*who),
            };
            Ok(action(who, Action::CancelReservation { reservation }))
        }
        Op::LeaveReservation { p, pick } => Ok(action(
            provider(*p),
            Action::LeaveReservation {
                reservation: pick_reservation(s, *pick),
            },
        )),
        Op::SettleReservations => Err(LeaderCommand::SettleReservations),
        Op::ChangeValidators => Err(LeaderCommand::ChangeValidators),
        Op::Release { who } => Err(LeaderCommand::ReleaseStake {
            account: anyone(*who),
        }),
        Op::Delegate { who, p, amount } => Ok(action(
            anyone(*who),
            Action::Delegate {
                provider: backed(*p),
                amount: *amount,
            },
        )),
        Op::Undelegate {
            who,
            p,
            amount,
            all,
        } => {
            let (who, provider) = (anyone(*who), backed(*p));
            let amount = match s.pool(&provider) {
                Some(pool) if *all => s
                    .delegations_of(&who)
                    .iter()
                    .find(|(q, _)| *q == provider)
                    .and_then(|(_, d)| pool.value(d.shares))
                    .unwrap_or(*amount),
                _ => *amount,
            };
            Ok(action(who, Action::Undelegate { provider, amount }))
        }
        Op::WithdrawRewards { who, p } => Ok(action(
            anyone(*who),
            Action::WithdrawRewards {
                provider: backed(*p),
            },
        )),
        Op::Propose {
            who,
            kind,
            value,
            deposit,
            delay_ms,
        } => {
            let change = match kind {
                0 => engine::ParamChange::FeeBps { bps: *value },
                1 => engine::ParamChange::MinStake {
                    amount: u128::from(*value % 100),
                },
                2 => engine::ParamChange::ActionFee {
                    amount: u128::from(*value % 5),
                },
                3 => engine::ParamChange::UnbondingDelay {
                    ms: u64::from(*value),
                },
                4 => engine::ParamChange::TreasurySpend {
                    to: anyone(*who),
                    amount: u128::from(*value),
                },
                // Rules 26: the validator set, as the set's own votes would change it.
                6 if value % 2 == 0 => engine::ParamChange::Validator(
                    engine::ValidatorChange::Add(engine::Validator {
                        account: anyone(*who),
                        power: 1 + u64::from(*value % 3),
                        address: format!("http://10.0.2.{}:7700", value % 8),
                        stake: 0,
                    }),
                ),
                6 => engine::ParamChange::Validator(engine::ValidatorChange::Remove(anyone(*who))),
                // Rules 27: the staking rules (the commission bounds and the validators' share;
                // out of bounds now and then).
                7 => engine::ParamChange::Staking(engine::StakingParams {
                    max_commission_bps: *value,
                    commission_step_bps: value % 1_000,
                    validator_fee_bps: value % 10_001,
                    min_delegation: u128::from(*value % 3),
                    ..s.staking_params()
                }),
                // Rules 27: the scheduler's tunables (the queue per slot and the hold; out of
                // bounds now and then).
                8 => engine::ParamChange::Scheduling(engine::ScheduleParams {
                    queue_per_slot: value % 6,
                    hold_ms: u64::from(*value) * 10,
                    timeout_grace_ms: 1_000,
                    ..s.config.schedule.clone()
                }),
                _ => engine::ParamChange::Verification(VerifyParams {
                    spot_check_bps: *value,
                    ..s.verify.clone()
                }),
            };
            let title = format!("change {kind}");
            Ok(action(
                anyone(*who),
                match delay_ms {
                    None => Action::Propose {
                        title,
                        changes: vec![change],
                        deposit: *deposit,
                    },
                    Some(delay_ms) => Action::ProposeWithDelay {
                        title,
                        changes: vec![change],
                        deposit: *deposit,
                        delay_ms: *delay_ms,
                    },
                },
            ))
        }
        Op::Vote {
            who,
            proposal,
            option,
        } => {
            // Mostly an open one.
            let ids: Vec<u64> = s
                .governance
                .proposals
                .values()
                .filter(|p| p.status == engine::ProposalStatus::Voting || *proposal < 16)
                .map(|p| p.id)
                .collect();
            let proposal = match ids.len() {
                0 => u64::from(*proposal),
                n => ids[*proposal as usize % n],
            };
            let option = [
                engine::VoteOption::Yes,
                engine::VoteOption::No,
                engine::VoteOption::Abstain,
                engine::VoteOption::NoWithVeto,
            ][*option as usize % 4];
            Ok(action(anyone(*who), Action::Vote { proposal, option }))
        }
        Op::SetCommission { p, bps } => Ok(action(
            backed(*p),
            Action::SetCommission {
                commission_bps: *bps,
            },
        )),
        Op::Equivocate { .. } => unreachable!("built above"),
        Op::ValidatorVote { who, target, add } => {
            let account = anyone(*target);
            let change = if *add {
                engine::ValidatorChange::Add(engine::Validator {
                    account,
                    power: 1 + u64::from(*target % 3),
                    address: format!("http://10.0.1.{}:7700", target % 8),
                    stake: 0,
                })
            } else {
                engine::ValidatorChange::Remove(account)
            };
            Ok(action(anyone(*who), Action::ValidatorVote(change)))
        }
    };
    let (input, stale) = match signed_body {
        Ok((who, body)) => {
            let last = s.nonce(&who);
            let (nonce, stale) = match step.nonce {
                Nonce::Next => (last + 1, false),
                Nonce::Stale(back) => (last.saturating_sub(back), true),
                Nonce::Skip(by) => (last + 1 + by, false),
            };
            (signed(who, nonce, body), stale)
        }
        Err(cmd) => (Input::Leader(cmd), false),
    };
    Built {
        entry: entry(time, input),
        stale,
        picked: None,
    }
}

/// `who`'s signed fetch for up to `max` tasks (a dummy signature: the engine checks none).
fn fetch_input(who: AccountId, nonce: u64, max: u32) -> Input {
    Input::Fetch(Box::new(engine::WorkFetch {
        fetches: vec![engine::Signed {
            signer: who,
            nonce,
            body: engine::Request::Fetch {
                max,
                wait_ms: 0,
                held: Vec::new(),
                cached: Vec::new(),
            },
            signature: engine::Sig([0; 64]),
        }],
        waiting: Vec::new(),
    }))
}

/// Every current validator attests that `who` has been silent, at `time`.
fn lost_input(s: &State, who: AccountId, time: Time) -> Input {
    Input::Lost(Box::new(engine::Lost {
        provider: who,
        attestations: s
            .validators
            .set
            .validators
            .iter()
            .map(|v| engine::Signed {
                signer: v.account,
                nonce: 0,
                body: engine::Silence {
                    provider: who,
                    at: time,
                },
                signature: engine::Sig([0; 64]),
            })
            .collect(),
    }))
}

/// Everything that must hold of any reachable state.
/// Rules 26: a reservation id drawn from `pick`: mostly a live one, sometimes any (or none).
fn pick_reservation(s: &State, pick: u8) -> u64 {
    let live: Vec<u64> = s
        .reservations
        .reservations
        .values()
        .filter(|r| r.ended.is_none() || pick >= 240)
        .map(|r| r.id)
        .collect();
    match live.len() {
        0 => u64::from(pick % 3),
        n => live[pick as usize % n],
    }
}

fn check_invariants(s: &State) -> Result<(), TestCaseError> {
    // Rules 26: every reservation holds exactly its open slots' and current periods' price,
    // no provider leases more slots than it has, and the next due time is the earliest.
    prop_assert!(s.rules >= 26 || s.reservations == engine::reserve::Reservations::default());
    for r in s.reservations.reservations.values() {
        prop_assert_eq!(
            r.open_held,
            r.spec.price_per_slot * u128::from(r.open_slots)
        );
        let leases = s.reservations.leases_of(r.id);
        let leased: u32 = leases.iter().map(|(_, l)| l.slots).sum();
        prop_assert!(r.open_slots + leased <= r.spec.slots);
        prop_assert_eq!(r.ended.is_some(), r.open_slots == 0 && leases.is_empty());
        for (_, l) in &leases {
            prop_assert_eq!(l.held, r.spec.price_per_slot * u128::from(l.slots));
            prop_assert!(l.period < r.spec.periods);
            prop_assert!(s.reservations.next_due <= Some(l.period_start + r.spec.period_ms));
        }
        if r.open_slots > 0 {
            prop_assert!(s.reservations.next_due <= Some(r.open_until));
        }
    }
    for (p, leases) in &s.reservations.leases {
        prop_assert!(!leases.is_empty());
        prop_assert!(
            s.reservations.leased_slots(p) <= s.providers[p].spec.slots,
            "{:?} leases more slots than it has",
            p
        );
    }
    // Rules 25: a pool's shares are its delegations', its delegators are counted, and its
    // rewards cover what every delegation could withdraw (exact to the base unit: rounding
    // leaves dust in the pool, never a claim the pool cannot pay).
    prop_assert!(s.rules >= 25 || s.delegation == engine::Delegations::default());
    // Rules 25: the price index keeps a bounded window per class, and a class's regional
    // windows hold no more payments than the class's own has seen.
    prop_assert!(s.rules >= 25 || s.market.classes.is_empty());
    for (class, ring) in &s.market.classes {
        prop_assert!(
            !ring.is_empty() && ring.len() <= engine::MARKET_WINDOW,
            "{}",
            class
        );
        prop_assert!(
            ring.windows(2).all(|w| w[0].at <= w[1].at),
            "{} out of order",
            class
        );
        let kind = class.split('@').next().unwrap();
        prop_assert!(kind == "cpu" || kind == "gpu", "{}", class);
        prop_assert!(s.market.classes.contains_key(kind));
    }
    for (provider, pool) in &s.delegation.pools {
        let mut shares = 0u128;
        let mut delegators = 0u32;
        let mut owed = 0u128;
        for (delegator, by_provider) in &s.delegation.delegations {
            if let Some(d) = by_provider.get(provider) {
                prop_assert!(
                    d.shares > 0,
                    "{:?} holds no shares of {:?}",
                    delegator,
                    provider
                );
                prop_assert!(d.index <= pool.reward_index);
                shares += d.shares;
                delegators += 1;
                owed += s.pending_rewards(delegator, provider);
            }
        }
        prop_assert_eq!(shares, pool.shares, "shares of {:?}", provider);
        prop_assert_eq!(delegators, pool.delegators);
        prop_assert!(
            owed <= pool.rewards,
            "{:?} owes {} holding {}",
            provider,
            owed,
            pool.rewards
        );
        if pool.shares == 0 {
            prop_assert_eq!(pool.tokens, 0);
            prop_assert_eq!(pool.rewards, 0);
        }
        // What the delegations are worth never exceeds what the pool holds.
        let worth: u128 = s
            .delegation
            .delegations
            .values()
            .filter_map(|d| d.get(provider))
            .map(|d| pool.value(d.shares).unwrap())
            .sum();
        prop_assert!(worth <= pool.tokens);
        prop_assert!(pool.commission_bps <= s.staking_params().max_commission_bps);
    }
    // Rules 24: a run's energy is kept only for a provider that ran the task; a suspended
    // provider is active and gets nothing from a pick; a job's energy counts each accepted
    // run once, reported or not.
    prop_assert!(s.rules >= 24 || (s.energy.runs.is_empty() && s.energy.providers.is_empty()));
    for (task, runs) in &s.energy.runs {
        let t = &s.jobs[&task.job].tasks[task.index as usize];
        for who in runs.keys() {
            prop_assert!(
                t.runs.iter().any(|r| r.provider == *who),
                "energy of a run of {} that {} never ran",
                task,
                who
            );
        }
    }
    for p in s.providers.values() {
        if s.is_suspended(&p.id) {
            prop_assert_eq!(p.status, ProviderStatus::Active);
            prop_assert!(s.pick(p.id, 8).is_empty());
        }
    }
    for (id, job) in &s.jobs {
        let accepted: u64 = job
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Done)
            .filter_map(|t| t.result.as_ref())
            .map(|r| r.providers.len() as u64)
            .sum();
        let energy = s.job_energy(*id);
        prop_assert_eq!(energy.runs + energy.unreported, accepted);
        prop_assert!(energy.measured <= energy.runs);
    }
    // Rules 10: storage belongs to existing jobs, only under rules 10; a released one's job ended.
    prop_assert!(s.rules >= 10 || s.storage.jobs.is_empty());
    for (id, storage) in &s.storage.jobs {
        let job = &s.jobs[id];
        if storage.released_at.is_some() {
            prop_assert!(
                job.status.is_finished(),
                "job {} released while running",
                id
            );
        }
    }
    // Rules 11: answer statuses belong to existing jobs; a recorded status is not 0, belongs to
    // an accepted map task and is one its job lists.
    prop_assert!(s.rules >= 11 || (s.options.jobs.is_empty() && s.options.statuses.is_empty()));
    for (id, options) in &s.options.jobs {
        prop_assert!(s.jobs.contains_key(id));
        prop_assert!(*options != engine::JobOptions::default());
        prop_assert_eq!(options.normalised(), Ok(options.clone()));
    }
    for (task, status) in &s.options.statuses {
        prop_assert!(*status != 0);
        prop_assert!(s.success_exits(task.job).contains(status));
        let t = &s.jobs[&task.job].tasks[task.index as usize];
        prop_assert_eq!(&t.state, &engine::TaskState::Done);
        prop_assert!((task.index as usize) < s.jobs[&task.job].spec.tasks.len());
    }
    // Rules 23: GPU declarations belong to existing jobs, normalised; a class only to a
    // one-class job, and every run of such a job's map tasks is on a provider declaring it.
    prop_assert!(s.rules >= 23 || (s.gpu.jobs.is_empty() && s.gpu.classes.is_empty()));
    for (id, gpu) in &s.gpu.jobs {
        let job = &s.jobs[id];
        prop_assert_eq!(gpu.normalised(&job.spec), Ok(gpu.clone()));
        let maps = job.spec.tasks.len();
        for run in job.tasks.iter().take(maps).flat_map(|t| &t.runs) {
            let declared = s.providers[&run.provider].spec.gpu.as_deref();
            prop_assert!(
                declared.is_some(),
                "job {} ran on a provider without a GPU",
                id
            );
            // (A provider that registered again since may offer something else now: its
            // running tasks went back to the queue then.)
            if matches!(run.outcome, engine::RunOutcome::Running) {
                let offer = s.gpu_offer(&run.provider);
                prop_assert!(
                    offer.is_some(),
                    "job {} runs on a provider without an offer",
                    id
                );
                if gpu.one_class {
                    let own = s.gpu_class_of(&run.provider);
                    prop_assert_eq!(
                        own.as_deref(),
                        s.gpu_class(*id),
                        "job {} left its class",
                        id
                    );
                }
            }
        }
        prop_assert_eq!(
            s.gpu.classes.contains_key(id),
            gpu.one_class && job.tasks.iter().any(|t| !t.runs.is_empty())
        );
    }
    for p in s.gpu.offers.keys() {
        prop_assert!(s.providers[p].spec.gpu.is_some());
    }
    for id in s.gpu.classes.keys() {
        prop_assert!(s.gpu.jobs.get(id).is_some_and(|g| g.one_class));
    }
    // Rules 28: a claim is proven or pending, never both, and only with an offer of that
    // class; an open check is by a member that checked it, not the provider itself.
    let classes = s.gpu_classes();
    prop_assert!(s.rules >= 28 || (classes.proven.is_empty() && classes.pending.is_empty()));
    for (p, proven) in &classes.proven {
        prop_assert!(!classes.pending.contains_key(p));
        prop_assert!(s.gpu_offer(p).is_some(), "{:?} proven without an offer", p);
        prop_assert_eq!(s.gpu_class_of(p), Some(proven.class.clone()));
        prop_assert!(proven.by != Some(*p));
    }
    for (p, pending) in &classes.pending {
        prop_assert!(s.gpu_offer(p).is_some(), "{:?} pending without an offer", p);
        prop_assert_eq!(s.gpu_class_of(p), None);
        if let Some(open) = &pending.challenge {
            prop_assert!(open.checker != *p && pending.checked_by.contains(&open.checker));
        }
        prop_assert!(pending.checked_by.len() <= engine::MAX_CLASS_CHECKS);
    }
    if s.rules >= 28 {
        for p in s.gpu.offers.keys() {
            prop_assert!(
                classes.proven.contains_key(p) || classes.pending.contains_key(p),
                "{:?} offers a GPU with no claim",
                p
            );
        }
    }
    // Rules 5: the audit bookkeeping names open tasks only (it is forgotten when they end).
    for t in s
        .audits
        .awaiting
        .keys()
        .chain(s.audits.cleared.iter())
        .chain(s.audits.auditing.keys())
    {
        let task = s
            .jobs
            .get(&t.job)
            .and_then(|j| j.tasks.get(t.index as usize));
        prop_assert!(
            task.is_some_and(|task| matches!(task.state, TaskState::Queued | TaskState::Running)),
            "{} is in the audit bookkeeping but not open",
            t
        );
    }
    let max_attempts = s.config.max_attempts;
    prop_assert_eq!(
        s.next_job,
        s.jobs.len() as u64 + 1,
        "job ids are 1..next_job"
    );
    let mut queued = BTreeSet::new();
    let mut running: BTreeMap<AccountId, BTreeSet<TaskId>> = BTreeMap::new();
    for (&id, job) in &s.jobs {
        prop_assert_eq!(job.id, id);
        let maps = job.spec.tasks.len();
        let finished = job.status.is_finished();
        prop_assert_eq!(finished, job.finished_at.is_some(), "job {}", id);
        let is_reduce = matches!(job.spec.aggregate, Aggregate::Reduce(_));
        let done_maps = job
            .tasks
            .iter()
            .take(maps)
            .filter(|t| t.state == TaskState::Done)
            .count();
        prop_assert_eq!(job.maps_done as usize, done_maps, "job {} maps_done", id);
        // The reduce task exists exactly when every map is done — or (rules 19) dropped, its
        // job's delivered maps reopened, until they are accepted again.
        let has_reduce_task = job.tasks.len() == maps + 1;
        prop_assert!(job.tasks.len() == maps || (is_reduce && has_reduce_task));
        let reduce_dropped = job
            .tasks
            .get(maps)
            .is_some_and(|t| t.state == TaskState::Dropped && !finished);
        prop_assert_eq!(
            has_reduce_task,
            is_reduce && (done_maps == maps || reduce_dropped),
            "job {}",
            id
        );
        match &job.status {
            JobStatus::Running => prop_assert!(done_maps < maps, "job {} running", id),
            JobStatus::Reducing => prop_assert!(has_reduce_task, "job {} reducing", id),
            JobStatus::Completed => {
                prop_assert!(job.tasks.iter().all(|t| t.state == TaskState::Done));
                let parts = job.output_parts();
                let expected = if is_reduce { 1 } else { maps };
                prop_assert_eq!(parts.map(|p| p.len()), Some(expected), "job {}", id);
            }
            JobStatus::Failed { .. } | JobStatus::Cancelled => {
                prop_assert_eq!(job.output_parts(), None)
            }
        }
        let failed_tasks = job
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Failed)
            .count();
        prop_assert!(
            failed_tasks <= 1,
            "job {} has {} failed tasks",
            id,
            failed_tasks
        );
        if failed_tasks == 1 {
            prop_assert!(
                matches!(job.status, JobStatus::Failed { .. }),
                "job {} has a failed task",
                id
            );
        }
        for (index, task) in job.tasks.iter().enumerate() {
            let t = tid(id, index as u32);
            let live = task
                .runs
                .iter()
                .filter(|r| r.outcome == RunOutcome::Running)
                .count();
            let open = matches!(task.state, TaskState::Queued | TaskState::Running);
            prop_assert_eq!(task.queued > 0, open && s.offered(&t), "{} queued", t);
            if task.queued > 0 {
                queued.insert(t);
            }
            prop_assert!(!s.recheck.contains(&t) || (task.queued > 0 && !task.runs.is_empty()));
            // Rules 18: a dispute waits for one anchor's run, apart from the rest.
            prop_assert!(
                !s.disputes.contains(&t)
                    || (task.queued == 1
                        && !task.runs.is_empty()
                        && !s.queue.contains(&t)
                        && !s.recheck.contains(&t))
            );
            for r in &task.runs {
                prop_assert!(r.started <= s.now);
                if r.outcome == RunOutcome::Running {
                    prop_assert!(
                        running.entry(r.provider).or_default().insert(t),
                        "{} runs twice on one provider",
                        t
                    );
                }
            }
            // No provider holds two counted runs of a task (operators: see `TasksAssigned`, as a
            // provider may declare another operator later).
            let counted: Vec<AccountId> = task
                .runs
                .iter()
                .filter(|r| r.counts())
                .map(|r| r.provider)
                .collect();
            let distinct: BTreeSet<&AccountId> = counted.iter().collect();
            prop_assert_eq!(
                distinct.len(),
                counted.len(),
                "{} runs twice on a provider",
                t
            );
            match &task.state {
                TaskState::Queued => {
                    prop_assert!(!finished, "{} queued in a finished job", t);
                    prop_assert_eq!(live, 0);
                    prop_assert!(task.queued > 0, "{} queued with nothing queued", t);
                }
                TaskState::Running => {
                    prop_assert!(!finished, "{} running in a finished job", t);
                    // Rules 5: a trusted lone result waiting for the beacon runs nowhere.
                    prop_assert!(
                        live > 0 || s.audits.awaiting.contains_key(&t),
                        "{} running nowhere",
                        t
                    );
                }
                TaskState::Done => {
                    prop_assert_eq!(live, 0);
                    let r = task.result.as_ref().expect("done has a result");
                    for p in &r.providers {
                        // Rules 11: with the status the result was accepted with.
                        // Rules 30: a tolerant task's members returned outputs that agree with
                        // the accepted one (checked where the state still holds them).
                        let outputs = s.tolerances.outputs.get(&t);
                        let agrees = |hash: engine::Hash| {
                            hash == r.output_hash
                                || s.tolerance(t.job).is_some_and(|tolerance| {
                                    outputs.is_none_or(|o| {
                                        matches!((o.get(&hash), o.get(&r.output_hash)),
                                            (Some(a), Some(b)) if tolerance.agree(&a.0, &b.0))
                                    })
                                })
                        };
                        let agreed = task.runs.iter().any(|run| {
                            run.provider == *p
                                && run.returned().is_some_and(|(hash, .., status)| {
                                    agrees(hash) && status == s.accepted_status(t)
                                })
                        });
                        prop_assert!(agreed, "{} accepted a result {:?} did not return", t, p);
                    }
                }
                TaskState::Failed => prop_assert_eq!(live, 0),
                TaskState::Dropped => {
                    // Rules 19: a live job's reduce, its delivered maps reopened.
                    prop_assert!(
                        finished || (t.index as usize == maps && done_maps < maps),
                        "{} dropped in a live job",
                        t
                    );
                    prop_assert_eq!(live, 0);
                }
            }
            prop_assert_eq!(
                task.result.is_some(),
                task.state == TaskState::Done,
                "{} result",
                t
            );
            prop_assert!(task.failures <= max_attempts);
            // A task that failed for lack of a quorum says why without a failed run; a verified
            // failure (rules 3) is no attempt but says why too.
            let verified_failure = task
                .runs
                .iter()
                .any(|r| matches!(r.outcome, RunOutcome::Failure { .. }));
            prop_assert!(!verified_failure || s.rules >= 3);
            prop_assert_eq!(
                task.last_error.is_some(),
                task.failures > 0 || task.state == TaskState::Failed || verified_failure
            );
            if open {
                let d = s.task_descriptor(t);
                prop_assert!(d.is_some(), "no descriptor for live task {}", t);
                prop_assert_eq!(d.map(|d| d.task), Some(t));
            }
        }
    }
    // Queued replicas wait in the queue or (rules 6, for trusted providers only) among the
    // re-executions alone, or (rules 18, for anchors only) among the disputes; before rules 6
    // every re-execution is in the queue too.
    let offered: BTreeSet<TaskId> = s
        .queue
        .union(&s.recheck)
        .chain(&s.disputes)
        .copied()
        .collect();
    prop_assert_eq!(&offered, &queued, "queue vs queued tasks");
    prop_assert!(s.rules >= 6 || s.recheck.is_subset(&s.queue));
    prop_assert!(s.rules >= 18 || s.disputes.is_empty());
    for (&pid, p) in &s.providers {
        prop_assert_eq!(p.id, pid);
        let expected = running.remove(&pid).unwrap_or_default();
        prop_assert_eq!(&p.running, &expected, "provider {:?} running set", pid);
        if p.status != ProviderStatus::Active {
            prop_assert!(p.running.is_empty(), "inactive {:?} runs tasks", pid);
        }
        prop_assert!(
            p.running.len() <= s.capacity(p),
            "provider {:?} holds {} tasks with {} slots",
            pid,
            p.running.len(),
            p.spec.slots
        );
    }
    prop_assert!(
        running.is_empty(),
        "tasks running on unknown providers: {:?}",
        running
    );
    Ok(())
}

fn config() -> EngineConfig {
    EngineConfig {
        // Two failures fail a job: reachable within a short sequence.
        max_attempts: 2,
        // Runs time out once their wall limit (20 ms per task ahead of them) has passed.
        schedule: engine::ScheduleParams {
            timeout_grace_ms: 0,
            ..Default::default()
        },
        ..EngineConfig::default()
    }
}

fn fresh(validators: bool) -> State {
    State::from_genesis(&genesis_of(validators)).expect("valid genesis")
}

fn run(steps: &[Step], validators: bool) -> Result<(), TestCaseError> {
    let mut s = fresh(validators);
    let mut log: Vec<(Entry, Vec<Event>)> = Vec::new();
    let mut time: Time = 1000;
    for step in steps {
        time = time.saturating_add_signed(step.dt);
        let built = build(&s, step, time);
        let before = s.clone();
        let before_hash = s.hash();
        match s.apply(&built.entry) {
            Err(rejection) => {
                prop_assert_eq!(s.hash(), before_hash, "{} changed the hash", rejection);
                prop_assert!(s == before, "{} changed the state", rejection);
                if built.stale {
                    prop_assert!(
                        matches!(rejection, Rejection::StaleNonce { .. }),
                        "stale nonce rejected as {}",
                        rejection
                    );
                }
                if let Some(picked) = &built.picked {
                    prop_assert!(
                        picked.is_empty(),
                        "pick_tasks offered {:?}, assigning it was rejected: {}",
                        picked,
                        rejection
                    );
                }
            }
            Ok(events) => {
                prop_assert!(!built.stale, "stale nonce accepted: {:?}", built.entry);
                prop_assert_eq!(s.applied, before.applied + 1);
                prop_assert_eq!(s.now, before.now.max(built.entry.time));
                if let Input::Signed(signed) = &built.entry.input {
                    prop_assert_eq!(s.nonce(&signed.signer), signed.nonce);
                }
                if let (Some(picked), Input::Fetch(fetch)) = (&built.picked, &built.entry.input) {
                    // The fetch got exactly what the scheduler offered, and used its nonce up.
                    let got: Vec<TaskId> = events
                        .iter()
                        .filter_map(|e| match e {
                            Event::TasksAssigned { tasks, .. } => Some(tasks.clone()),
                            _ => None,
                        })
                        .flatten()
                        .collect();
                    prop_assert_eq!(&got, picked);
                    prop_assert_eq!(s.nonce(&fetch.fetches[0].signer), fetch.fetches[0].nonce);
                }
                check_events(&before, &s, &built.entry, &events)?;
                check_money(&before, &s, &events)?;
                log.push((built.entry, events));
            }
        }
        prop_assert!(s.now >= before.now, "time went backwards");
        check_invariants(&s)?;
    }

    let mut replayed = fresh(validators);
    for (entry, events) in &log {
        let again = replayed.apply(entry);
        prop_assert_eq!(again.as_ref(), Ok(events), "replaying {:?}", entry);
    }
    prop_assert_eq!(replayed.hash(), s.hash());
    prop_assert!(replayed == s);

    // Snapshots: the state survives JSON unchanged.
    let text = serde_json::to_string(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: State =
        serde_json::from_str(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(back.hash(), s.hash());
    Ok(())
}

/// The ledger's laws: supply is conserved except by the faucet; escrow never pays out more than it
/// locked and is empty once its job ends; no provider without the minimum stake holds work.
fn check_money(before: &State, after: &State, events: &[Event]) -> Result<(), TestCaseError> {
    let total_before = before.check_supply().map_err(TestCaseError::fail)?;
    let total_after = after.check_supply().map_err(TestCaseError::fail)?;
    let minted: u128 = events
        .iter()
        .map(|e| match e {
            Event::FaucetPaid { amount, .. } => *amount,
            _ => 0,
        })
        .sum();
    let burned: u128 = events
        .iter()
        .map(|e| match e {
            Event::Slashed { burned, .. } | Event::ValidatorSlashed { burned, .. } => *burned,
            // Rules 25: a vetoed proposal's deposit.
            Event::DepositBurned { amount, .. } => *amount,
            _ => 0,
        })
        .sum();
    prop_assert_eq!(
        total_after + burned,
        total_before + minted,
        "supply changed"
    );
    prop_assert_eq!(after.supply.burned, before.supply.burned + burned);
    for job in after.jobs.values() {
        let e = &job.escrow;
        prop_assert!(
            e.paid + e.refunded <= e.locked,
            "job {} overpaid: {:?}",
            job.id,
            e
        );
        prop_assert!(e.fees <= e.paid);
        if job.status.is_finished() {
            // Rules 19: a completed job that may yet be corrected keeps its correction reserve
            // (at most what re-running its lone results and reduce costs).
            if after.correctable(job.id) {
                let lone: u128 = job
                    .tasks
                    .iter()
                    .filter_map(|t| t.result.as_ref())
                    .map(|r| u128::from(r.fuel_used) * job.spec.max_price)
                    .sum();
                prop_assert!(e.held() <= lone, "job {} keeps too much: {:?}", job.id, e);
            } else {
                prop_assert_eq!(e.held(), 0, "job {} ended holding escrow", job.id);
            }
        } else if !after.corrected.contains_key(&job.id) {
            prop_assert_eq!(e.refunded, 0);
        }
    }
    for p in after.providers.values() {
        if !p.running.is_empty() {
            prop_assert!(
                after.backing(&p.id) >= MIN_STAKE
                    || before.providers[&p.id].running.len() >= p.running.len(),
                "{:?} was given work without the minimum stake",
                p.id
            );
        }
    }
    Ok(())
}

/// Events agree with the state change they describe.
fn check_events(
    before: &State,
    after: &State,
    entry: &Entry,
    events: &[Event],
) -> Result<(), TestCaseError> {
    // Rules 16: tasks whose result this entry reopened (after accepting it, perhaps), and
    // (rules 19) the reduce of their job, dropped until its maps are accepted again.
    let reopened: std::collections::BTreeSet<engine::TaskId> = events
        .iter()
        .filter_map(|e| match e {
            Event::ResultReopened { task, .. } => Some(*task),
            _ => None,
        })
        .flat_map(|task| {
            let reduce = engine::TaskId {
                job: task.job,
                index: after.jobs[&task.job].spec.tasks.len() as u32,
            };
            [task, reduce]
        })
        .collect();
    for (i, event) in events.iter().enumerate() {
        match event {
            Event::TasksAssigned { provider, tasks } => {
                // Rules 26: within the room its backing buys (rules 15: or its quota).
                let held = after.providers[provider].running.len();
                prop_assert!(
                    held <= before.room(&before.providers[provider])
                        || held <= before.providers[provider].running.len(),
                    "{:?} holds {} tasks, room for {}",
                    provider,
                    held,
                    before.room(&before.providers[provider])
                );
                // Rules 26: beyond a task per slot, within what its backing covers.
                let p = &after.providers[provider];
                let risk: u128 = p.running.iter().map(|t| after.at_risk(p, *t)).sum();
                prop_assert!(
                    held <= before.providers[provider].running.len()
                        || held <= p.spec.slots as usize
                        || after.hold_limit(p).is_none_or(|limit| risk <= limit),
                    "{:?} holds {} at risk, beyond its backing",
                    provider,
                    risk
                );
                for t in tasks {
                    prop_assert!(before.offered(t));
                    // Rules 6: one offered among the re-executions alone goes to a trusted
                    // provider only.
                    prop_assert!(before.queue.contains(t) || before.is_trusted(provider));
                    // Running, unless settling the task on the assignment concluded it (a quorum
                    // held back for a trusted member stands once no trusted provider could take
                    // part any more, which a provider's loss does not re-settle).
                    let concluded = matches!(
                        after.jobs[&t.job].tasks[t.index as usize].state,
                        TaskState::Done | TaskState::Failed | TaskState::Dropped
                    );
                    prop_assert!(
                        after.providers[provider].running.contains(t) || concluded,
                        "{} assigned to {} but not running after",
                        t,
                        provider
                    );
                    // The new replica's operator runs no other replica of the task.
                    let task = &after.jobs[&t.job].tasks[t.index as usize];
                    let mine = after.providers[provider].operator();
                    let others = task
                        .runs
                        .iter()
                        .filter(|r| r.counts() && r.provider != *provider)
                        .filter(|r| after.providers[&r.provider].operator() == mine)
                        .count();
                    prop_assert_eq!(others, 0, "{} replicas share an operator", t);
                }
            }
            Event::ActionFeePaid { payer, amount } => {
                let Input::Signed(signed) = &entry.input else {
                    return Err(TestCaseError::fail("a fee paid for an unsigned input"));
                };
                prop_assert_eq!(*payer, signed.signer);
                prop_assert_eq!(*amount, before.action_fee);
                prop_assert!(before.rules >= 8 && before.action_fee > 0);
                let free = matches!(
                    signed.body,
                    Action::ReportResults(_)
                        | Action::Faucet
                        | Action::ChallengeGpuClass { .. }
                        | Action::AnswerGpuClass { .. }
                );
                prop_assert!(!free, "a fee paid for a free action");
            }
            Event::JobSubmitted { job, tasks, .. } => {
                prop_assert_eq!(*job, before.next_job);
                prop_assert_eq!(*tasks as usize, after.jobs[job].tasks.len());
            }
            Event::StorageDeposited {
                job,
                owner,
                amount,
                bytes,
            } => {
                let Input::Signed(signed) = &entry.input else {
                    return Err(TestCaseError::fail("a deposit without a signed submission"));
                };
                let Some((spec, Some(storage))) = signed.body.submission() else {
                    return Err(TestCaseError::fail("a deposit for another action"));
                };
                prop_assert!(before.rules >= 10);
                prop_assert_eq!(*owner, signed.signer);
                prop_assert_eq!(Some(*bytes), storage.bytes(spec));
                let params = before.storage.params.as_ref();
                prop_assert!(params.is_none_or(|p| storage.output_bytes <= p.max_output_bytes));
                let expected = params.map_or(0, |p| {
                    engine::Storage::deposit(p, spec, storage).unwrap_or(u128::MAX)
                });
                prop_assert_eq!(*amount, expected);
                let held = &after.storage.jobs[job];
                prop_assert_eq!(held.deposit, *amount);
                prop_assert_eq!(held.released_at, None);
                prop_assert!(!before.storage.jobs.contains_key(job));
            }
            Event::StorageReleased { job, owner, amount } => {
                let was = &before.storage.jobs[job];
                prop_assert_eq!(was.released_at, None, "job {} released twice", job);
                prop_assert_eq!(was.deposit, *amount);
                prop_assert_eq!(
                    after.storage.jobs[job].released_at,
                    Some(entry.time.max(before.now))
                );
                let j = &before.jobs[job];
                prop_assert_eq!(j.owner, *owner);
                prop_assert!(j.status.is_finished(), "job {} released while running", job);
                match &entry.input {
                    Input::Signed(signed) => prop_assert_eq!(signed.signer, j.owner),
                    _ => {
                        let retention =
                            before.storage.params.as_ref().map_or(0, |p| p.retention_ms);
                        prop_assert!(
                            j.finished_at.unwrap_or(u64::MAX).saturating_add(retention)
                                <= entry.time.max(before.now),
                            "job {} released before its retention ended",
                            job
                        );
                    }
                }
            }
            Event::TaskCompleted { task, provider, .. }
            | Event::TaskAttemptFailed { task, provider, .. } => {
                prop_assert!(before.providers[provider].running.contains(task));
                prop_assert!(!after.providers[provider].running.contains(task));
            }
            Event::ReportIgnored { task, provider, .. } => {
                prop_assert!(!after.providers[provider].running.contains(task));
            }
            Event::JobCompleted { job } => {
                prop_assert_eq!(&after.jobs[job].status, &JobStatus::Completed)
            }
            Event::JobFailed { job, .. } => {
                prop_assert!(
                    matches!(after.jobs[job].status, JobStatus::Failed { .. }),
                    "job {} failed",
                    job
                )
            }
            Event::JobCancelled { job } => {
                prop_assert_eq!(&after.jobs[job].status, &JobStatus::Cancelled)
            }
            Event::JobSealedTo { job, providers } => {
                // Only its owner seals an unfinished private job, to providers it lacked.
                let Input::Signed(signed) = &entry.input else {
                    return Err(TestCaseError::fail("a job sealed by an unsigned input"));
                };
                prop_assert_eq!(signed.signer, before.jobs[job].owner);
                prop_assert!(!before.jobs[job].status.is_finished());
                let had = before.job_sealing(*job).expect("a private job");
                let has = after.job_sealing(*job).expect("still private");
                for p in providers {
                    prop_assert!(had.wrapped_for(p).is_none());
                    prop_assert!(has.wrapped_for(p).is_some());
                }
                prop_assert_eq!(has.key_check, had.key_check);
            }
            Event::ReduceQueued { job } => {
                prop_assert_eq!(&after.jobs[job].status, &JobStatus::Reducing)
            }
            Event::ProviderRegistered { provider, requeued }
            | Event::ProviderLeft { provider, requeued }
            | Event::ProviderLost { provider, requeued } => {
                let held = before
                    .providers
                    .get(provider)
                    .map(|p| p.running.clone())
                    .unwrap_or_default();
                let requeued: BTreeSet<_> = requeued.iter().copied().collect();
                prop_assert!(
                    requeued.is_subset(&held),
                    "requeued is part of what {:?} held",
                    provider
                );
                for t in &requeued {
                    let task = &after.jobs[&t.job].tasks[t.index as usize];
                    prop_assert!(
                        task.runs
                            .iter()
                            .any(|r| r.provider == *provider && r.outcome == RunOutcome::Abandoned),
                        "{} requeued without an abandoned run",
                        t
                    );
                }
            }
            Event::Transferred { from, to, amount } => {
                prop_assert!(*amount > 0 && from != to);
                // Rules 8: the sender paid the fee for the action too, to the treasury.
                let fee = |who: &AccountId| -> i128 {
                    let paid: i128 = events
                        .iter()
                        .map(|e| match e {
                            Event::ActionFeePaid { payer, amount } if payer == who => {
                                -(*amount as i128)
                            }
                            _ => 0,
                        })
                        .sum();
                    let received: i128 = events
                        .iter()
                        .map(|e| match e {
                            Event::ActionFeePaid { amount, .. }
                                if *who == after.ledger.treasury =>
                            {
                                *amount as i128
                            }
                            _ => 0,
                        })
                        .sum();
                    // Rules 25 and 26: what the entry's decisions of proposals and settlement of
                    // reservations moved (after its own effect: a transfer may leave too little
                    // for the next period).
                    let settled: i128 = events
                        .iter()
                        .map(|e| match e {
                            Event::ReservationRenewed { owner, amount, .. } if owner == who => {
                                -(*amount as i128)
                            }
                            Event::ReservationRefunded { owner, amount, .. } if owner == who => {
                                *amount as i128
                            }
                            Event::ReservationPaid {
                                provider, amount, ..
                            } if provider == who => *amount as i128,
                            Event::ReservationPaid { fee, .. } if *who == after.ledger.treasury => {
                                *fee as i128
                            }
                            // Rules 25: likewise its decision of proposals.
                            Event::DepositReturned {
                                proposer, amount, ..
                            } if proposer == who => *amount as i128,
                            Event::TreasurySpent { to, amount } if to == who => *amount as i128,
                            Event::TreasurySpent { amount, .. }
                                if *who == after.ledger.treasury =>
                            {
                                -(*amount as i128)
                            }
                            // Rules 27: the validators' payout, from the treasury.
                            Event::ValidatorPaid {
                                validator, amount, ..
                            } if validator == who => *amount as i128,
                            Event::ValidatorPaid { share, .. } if *who == after.ledger.treasury => {
                                -(*share as i128)
                            }
                            _ => 0,
                        })
                        .sum();
                    paid + received + settled
                };
                prop_assert_eq!(
                    after.balance(from) as i128,
                    before.balance(from) as i128 - *amount as i128 + fee(from)
                );
                prop_assert_eq!(
                    after.balance(to) as i128,
                    before.balance(to) as i128 + *amount as i128 + fee(to)
                );
            }
            Event::FaucetPaid { to, amount } => {
                prop_assert!(before.balance(to) < *amount, "faucet filled a full account");
            }
            Event::EscrowLocked { job, amount, .. } => {
                prop_assert_eq!(after.jobs[job].escrow.locked, *amount);
                prop_assert_eq!(Some(*amount), State::job_cost(&after.jobs[job].spec));
            }
            Event::TaskPaid {
                task,
                provider,
                amount,
                fee,
            } => {
                // Rules 16: a result accepted, paid and reopened in one entry (one of its
                // providers caught lying later in the entry) is judged by the reopening's checks.
                if reopened.contains(task) {
                    continue;
                }
                let job = &after.jobs[&task.job];
                // Rules 23: a GPU job's map task pays the provider's GPU price.
                let price = after
                    .price_per_fuel(&after.providers[provider], job, Some(task.index))
                    .min(job.spec.max_price);
                // Every report in these tests claims 10 fuel, within every limit; the agreeing
                // providers share one payment.
                let t = &job.tasks[task.index as usize];
                let share = match &t.result {
                    Some(r) => r.providers.len() as u128,
                    // Rules 3: the members of a verified failure share its payment; each
                    // reported that failure.
                    None => {
                        prop_assert_eq!(&t.state, &TaskState::Failed, "{} paid", task);
                        let reported = t.runs.iter().any(|r| {
                            r.provider == *provider
                                && matches!(r.outcome, RunOutcome::Failure { .. })
                        });
                        prop_assert!(reported, "{} paid {} for no failure", task, provider);
                        // Rules 26: a member on a lease is covered by its reservation
                        // (`TaskCovered`) and still counts as a share.
                        events
                            .iter()
                            .filter(|e| {
                                matches!(e, Event::TaskPaid { task: t, .. }
                                    | Event::TaskCovered { task: t, .. } if t == task)
                            })
                            .count() as u128
                    }
                };
                prop_assert!(share > 0, "{} paid without a result", task);
                // Rules 25: the delegators' share follows, out of the provider's net.
                let pooled = match events.get(i + 1) {
                    Some(Event::DelegatorsPaid {
                        provider: q,
                        amount,
                        commission,
                    }) if q == provider => {
                        let pool = &before.delegation.pools[provider];
                        let net = 10 * price / share - fee;
                        prop_assert_eq!(
                            *commission,
                            net * u128::from(pool.commission_bps) / 10_000
                        );
                        let backing = before.bonded(provider) + pool.tokens;
                        prop_assert_eq!(*amount, (net - commission) * pool.tokens / backing);
                        *amount
                    }
                    _ => 0,
                };
                prop_assert_eq!(amount + pooled + fee, 10 * price / share, "{} paid", task);
                // Rules 25: recorded in the price index at the price paid.
                if after.rules >= 25 {
                    let kind = if after.gpu.jobs.contains_key(&task.job)
                        && (task.index as usize) < job.spec.tasks.len()
                    {
                        "gpu"
                    } else {
                        "cpu"
                    };
                    let recorded = after.market.classes[kind]
                        .iter()
                        .any(|c| c.price == price && c.at == after.now);
                    prop_assert!(recorded, "{} paid at {} but not in the index", task, price);
                }
                // The fee in force when the entry was applied (a proposal decided at its end
                // may change it for later payments).
                prop_assert_eq!(
                    *fee,
                    (amount + pooled + fee) * u128::from(before.ledger.fee_bps) / 10_000
                );
            }
            Event::EscrowRefunded { job, amount, .. } => {
                let j = &after.jobs[job];
                prop_assert!(j.status.is_finished());
                let was = before.jobs.get(job).map_or(0, |b| b.escrow.refunded);
                prop_assert_eq!(j.escrow.refunded, was + amount);
                // Rules 19: a second refund is the correction reserve's, at the release of the
                // job's storage or at its completion after a correction.
                let released = events
                    .iter()
                    .any(|e| matches!(e, Event::StorageReleased { job: r, .. } if r == job));
                prop_assert!(
                    was == 0
                        || (after.rules >= 19 && (released || after.corrected.contains_key(job))),
                    "job {} refunded twice",
                    job
                );
            }
            Event::Staked {
                account, bonded, ..
            } => prop_assert_eq!(after.bonded(account), *bonded),
            Event::UnbondingStarted {
                account,
                amount,
                release_at,
            } => {
                prop_assert_eq!(after.bonded(account), before.bonded(account) - amount);
                // The unbonding delay in force when the entry was applied (governance may
                // change it at the entry's end).
                prop_assert_eq!(*release_at, after.now + before.ledger.unbonding_delay_ms);
            }
            Event::Delegated {
                delegator,
                provider,
                amount,
                ..
            } => {
                prop_assert!(after.rules >= 25);
                prop_assert!(*amount >= after.min_delegation());
                prop_assert_eq!(
                    after.delegated_to(provider),
                    before.delegated_to(provider) + amount
                );
                prop_assert!(delegator != provider);
                // Its rewards so far were paid before the shares were bought (rules 26: unless
                // the entry's settlement of reservations paid the pool since).
                let paid_since = events[i..].iter().any(
                    |e| matches!(e, Event::DelegatorsPaid { provider: p, .. } if p == provider),
                );
                prop_assert!(paid_since || after.pending_rewards(delegator, provider) == 0);
            }
            Event::Undelegated {
                delegator,
                provider,
                amount,
                release_at,
            } => {
                prop_assert_eq!(*release_at, after.now + before.ledger.unbonding_delay_ms);
                let released: u128 = after.delegation.pools[provider]
                    .unbonding
                    .iter()
                    .filter(|u| u.delegator == *delegator && u.release_at == *release_at)
                    .map(|u| u.amount)
                    .sum();
                prop_assert!(released >= *amount);
                // Its rewards were paid out first (unless the pool earned since, in this entry:
                // a reservation's settlement, rules 26, or the validators' payout, rules 27).
                let paid_since = events[i..].iter().any(
                    |e| matches!(e, Event::DelegatorsPaid { provider: p, .. } if p == provider),
                );
                prop_assert!(paid_since || after.pending_rewards(delegator, provider) == 0);
            }
            Event::RewardsWithdrawn {
                delegator,
                provider,
                amount,
            } => {
                prop_assert!(*amount > 0);
                // Nothing left to withdraw (unless the pool earned since, in this entry, as
                // for `Undelegated`).
                let paid_since = events[i..].iter().any(
                    |e| matches!(e, Event::DelegatorsPaid { provider: p, .. } if p == provider),
                );
                prop_assert!(paid_since || after.pending_rewards(delegator, provider) == 0);
            }
            Event::DelegatorsPaid { provider, .. } => {
                // Only right after the provider's own payment (checked there).
                let after_pay = matches!(
                    i.checked_sub(1).and_then(|j| events.get(j)),
                    Some(Event::TaskPaid { provider: q, .. }
                        | Event::ReservationPaid { provider: q, .. }
                        | Event::ValidatorPaid { validator: q, .. }) if q == provider
                );
                prop_assert!(after_pay, "delegators of {:?} paid alone", provider);
            }
            Event::GpuClassPending { provider, class } => {
                prop_assert!(before.rules >= 28);
                let pending = after.gpu_class_pending(provider);
                prop_assert_eq!(pending.map(|p| &p.class), Some(class));
                // A member of another operator could have checked it.
                let operator = after.providers[provider].spec.operator_of(*provider);
                let member = after.gpu_classes().proven.iter().any(|(m, c)| {
                    &c.class == class
                        && after.providers[m].status == engine::ProviderStatus::Active
                        && after.providers[m].spec.operator_of(*m) != operator
                });
                prop_assert!(member, "{:?} pending with nobody to check it", provider);
            }
            Event::GpuClassProven {
                provider,
                class,
                by,
            } => {
                prop_assert!(before.rules >= 28);
                prop_assert_eq!(after.gpu_class_of(provider), Some(class.clone()));
                prop_assert_eq!(after.gpu_classes().proven[provider].by, *by);
                if let Some(checker) = by {
                    // It answered the open check of `checker` right, in time.
                    let open = before
                        .gpu_class_pending(provider)
                        .and_then(|p| p.challenge.clone());
                    prop_assert!(
                        open.as_ref()
                            .is_some_and(|o| o.checker == *checker && after.now < o.due()),
                        "{:?} proven without {:?}'s open check",
                        provider,
                        checker
                    );
                    let answered = matches!(&entry.input, Input::Signed(s) if matches!(
                        &s.body,
                        Action::AnswerGpuClass { answer } if engine::class_commitment(
                            provider, open.as_ref().unwrap().challenge, answer
                        ) == open.as_ref().unwrap().commitment
                    ));
                    prop_assert!(answered);
                }
            }
            Event::GpuClassChallenged {
                provider,
                checker,
                challenge,
            } => {
                let open = after
                    .gpu_class_pending(provider)
                    .and_then(|p| p.challenge.clone());
                prop_assert!(open.is_some_and(|o| o.checker == *checker
                    && o.challenge == *challenge
                    && o.at == after.now));
                prop_assert_eq!(
                    before.gpu_class_of(checker),
                    Some(before.gpu_class_pending(provider).unwrap().class.clone())
                );
            }
            Event::GpuClassCheckFailed { provider, checker } => {
                let pending = after.gpu_class_pending(provider).unwrap();
                prop_assert!(pending.challenge.is_none() && pending.checked_by.contains(checker));
                prop_assert_eq!(after.gpu_class_of(provider), None);
            }
            Event::ValidatorPaid {
                validator,
                amount,
                share,
            } => {
                prop_assert!(before.rules >= 27 && *share > 0 && amount <= share);
                // Paid before a change of the set (by the set before it), else at the end of
                // the entry (by the set after it).
                let forced = events[i..]
                    .iter()
                    .any(|e| matches!(e, Event::ValidatorSetChanged { .. }));
                let at = if forced { before } else { after };
                let (set, params) = (&at.validators.set, at.staking_params());
                let power = set.get(validator).map(|(_, v)| v.power);
                prop_assert!(power.is_some(), "{:?} paid, not a validator", validator);
                // Its part of the validators' share of the fees counted since the last payout
                // (what the treasury could pay of it: all, unless a spend took it).
                let fees: u128 = before.staking.fees_collected
                    + events[..i]
                        .iter()
                        .map(|e| match e {
                            Event::TaskPaid { fee, .. } | Event::ReservationPaid { fee, .. } => {
                                *fee
                            }
                            Event::ActionFeePaid { amount, .. } => *amount,
                            _ => 0,
                        })
                        .sum::<u128>();
                let due = fees * u128::from(params.validator_fee_bps) / 10_000
                    * u128::from(power.unwrap())
                    / u128::from(set.total_power());
                let spent = events
                    .iter()
                    .any(|e| matches!(e, Event::TreasurySpent { .. }));
                // Or the treasury (an account like any other) held less than the share: what
                // it holds now and what it paid the validators in this entry, at most.
                let paid: u128 = events
                    .iter()
                    .map(|e| match e {
                        Event::ValidatorPaid { share, .. } => *share,
                        _ => 0,
                    })
                    .sum();
                let short = after.balance(&after.ledger.treasury) + paid
                    < fees * u128::from(params.validator_fee_bps) / 10_000;
                prop_assert!(
                    *share == due || ((spent || short) && *share < due),
                    "{} of {}",
                    share,
                    due
                );
                // Split as a provider's payment: commission, own stake, pool.
                let pooled = match events.get(i + 1) {
                    Some(Event::DelegatorsPaid {
                        provider: q,
                        amount,
                        commission,
                    }) if q == validator => {
                        let pool = &at.delegation.pools[validator];
                        prop_assert_eq!(
                            *commission,
                            share * u128::from(pool.commission_bps) / 10_000
                        );
                        let backing = at.bonded(validator) + pool.tokens;
                        prop_assert_eq!(*amount, (share - commission) * pool.tokens / backing);
                        *amount
                    }
                    _ => 0,
                };
                prop_assert_eq!(amount + pooled, *share);
                let earned = |s: &State| {
                    s.staking
                        .validator_earned
                        .get(validator)
                        .copied()
                        .unwrap_or(0)
                };
                prop_assert_eq!(earned(after), earned(before) + share);
                prop_assert_eq!(after.staking.last_payout, after.now);
            }
            Event::RewardDustSwept { provider, amount } => {
                prop_assert!(*amount > 0);
                prop_assert_eq!(after.delegation.pools[provider].shares, 0);
            }
            Event::DelegationSlashed { provider, amount } => {
                let before_pool = &before.delegation.pools[provider];
                let after_pool = &after.delegation.pools[provider];
                let held = |p: &engine::Pool| {
                    p.tokens + p.unbonding.iter().map(|u| u.amount).sum::<u128>()
                };
                // An entry may slash a provider more than once (each escalating).
                let taken: u128 = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::DelegationSlashed {
                            provider: q,
                            amount,
                        } if q == provider => Some(*amount),
                        _ => None,
                    })
                    .sum();
                prop_assert!(*amount > 0);
                prop_assert_eq!(held(after_pool) + taken, held(before_pool));
                prop_assert_eq!(after_pool.shares, before_pool.shares);
            }
            Event::Proposed {
                proposal,
                deposit,
                voting_end,
                ..
            } => {
                prop_assert!(*deposit >= before.gov_params().min_deposit);
                let p = &after.governance.proposals[proposal];
                prop_assert_eq!(p.voting_end, *voting_end);
                prop_assert!(!before.governance.proposals.contains_key(proposal));
            }
            Event::Voted {
                proposal,
                voter,
                option,
            } => {
                prop_assert_eq!(
                    after.governance.proposals[proposal].votes.get(voter),
                    Some(option)
                );
                prop_assert_eq!(
                    &before.governance.proposals[proposal].status,
                    &engine::ProposalStatus::Voting
                );
            }
            Event::DepositReturned {
                proposal, amount, ..
            }
            | Event::DepositBurned { proposal, amount } => {
                let p = &after.governance.proposals[proposal];
                prop_assert_eq!(p.deposit, *amount);
                prop_assert_eq!(
                    &before.governance.proposals[proposal].status,
                    &engine::ProposalStatus::Voting
                );
                prop_assert!(p.voting_end <= after.now);
                let burned = matches!(event, Event::DepositBurned { .. });
                prop_assert_eq!(burned, p.status == engine::ProposalStatus::Vetoed);
            }
            Event::TreasurySpent { .. } => {
                let passed = events.iter().any(|e| {
                    matches!(
                        e,
                        Event::ProposalDecided {
                            status: engine::ProposalStatus::Passed,
                            ..
                        } | Event::ProposalExecuted {
                            status: engine::ProposalStatus::Passed,
                            ..
                        }
                    )
                });
                prop_assert!(passed, "a treasury spend without a passed proposal");
            }
            Event::Reserved {
                reservation,
                owner,
                slots,
                held,
                ..
            } => {
                let r = &after.reservations.reservations[reservation];
                prop_assert!(!before.reservations.reservations.contains_key(reservation));
                prop_assert_eq!(r.owner, *owner);
                prop_assert_eq!(*held, r.spec.price_per_slot * u128::from(*slots));
            }
            Event::ReservationAccepted {
                reservation,
                provider,
                slots,
                ..
            } => {
                let Input::Signed(signed) = &entry.input else {
                    return Err(TestCaseError::fail("an acceptance not signed"));
                };
                prop_assert_eq!(signed.signer, *provider);
                let r = &before.reservations.reservations[reservation];
                prop_assert!(r.owner != *provider && !r.cancelled && *slots <= r.open_slots);
                prop_assert!(r.spec.admits(&before.providers[provider].spec).is_ok());
                prop_assert!(before.has_min_stake(provider));
            }
            Event::ReservationPaid {
                reservation,
                provider,
                period,
                amount,
                fee,
            } => {
                // The period's escrow, all of it: the fee, the pool's share, the rest kept.
                // (Several periods may have ended by this entry: each is paid in turn.)
                let lease = &before.reservations.leases[provider][reservation];
                prop_assert!(*period >= lease.period);
                let pooled = match events.get(i + 1) {
                    Some(Event::DelegatorsPaid {
                        provider: p,
                        amount,
                        ..
                    }) if p == provider => *amount,
                    _ => 0,
                };
                prop_assert_eq!(*amount + *fee + pooled, lease.held);
                prop_assert!(!lease.missed);
                prop_assert_eq!(
                    after.providers[provider].status,
                    engine::ProviderStatus::Active
                );
            }
            Event::ReservationRenewed {
                reservation,
                owner,
                provider,
                period,
                amount,
                ..
            } => {
                // (It may run out within the same entry: several periods ended at once.)
                let was = &before.reservations.leases[provider][reservation];
                let r = &before.reservations.reservations[reservation];
                prop_assert_eq!(r.owner, *owner);
                prop_assert!(*period > was.period && *period < r.spec.periods);
                prop_assert_eq!(*amount, was.held);
                prop_assert!(!r.cancelled);
            }
            Event::ReservationCancelled { reservation } => {
                let Input::Signed(signed) = &entry.input else {
                    return Err(TestCaseError::fail("a cancellation not signed"));
                };
                prop_assert_eq!(
                    signed.signer,
                    before.reservations.reservations[reservation].owner
                );
            }
            Event::ReservationRefunded {
                reservation,
                owner,
                amount,
            } => {
                let r = &after.reservations.reservations.get(reservation);
                prop_assert!(r.is_none_or(|r| r.owner == *owner && r.refunded >= *amount));
                prop_assert!(*amount > 0);
            }
            Event::LeaseEnded {
                reservation,
                provider,
                ..
            } => {
                prop_assert!(before.reservations.leases[provider].contains_key(reservation));
                prop_assert!(
                    after
                        .reservations
                        .leases
                        .get(provider)
                        .is_none_or(|m| !m.contains_key(reservation))
                );
            }
            Event::TaskCovered {
                task,
                provider,
                reservation,
            } => {
                let job = &before.jobs[&task.job];
                prop_assert_eq!(
                    before.covering_lease(provider, &job.owner),
                    Some(*reservation)
                );
                // The covered run draws nothing from the escrow; the job's other payments in
                // this entry do (a verified failure's members share one payment, some of them
                // paid, some covered by a lease).
                let paid_here: u128 = events
                    .iter()
                    .enumerate()
                    .filter_map(|(i, e)| match e {
                        Event::TaskPaid {
                            task: t,
                            provider: q,
                            amount,
                            fee,
                        } if t.job == task.job => {
                            let pooled = match events.get(i + 1) {
                                Some(Event::DelegatorsPaid {
                                    provider: p,
                                    amount,
                                    ..
                                }) if p == q => *amount,
                                _ => 0,
                            };
                            Some(amount + fee + pooled)
                        }
                        _ => None,
                    })
                    .sum();
                prop_assert_eq!(
                    after.jobs[&task.job].escrow.paid,
                    job.escrow.paid + paid_here
                );
            }
            Event::ValidatorChangeQueued { change } => {
                // A passed proposal queued it, at the entry that decided or scheduled it.
                prop_assert!(after.gov_schedule.validator_changes.contains(change));
                prop_assert!(after.validators.set.validate().is_ok());
            }
            Event::ValidatorChangeDropped { change, why } => {
                prop_assert!(matches!(
                    entry.input,
                    Input::Leader(LeaderCommand::ChangeValidators)
                ));
                prop_assert_eq!(before.gov_schedule.validator_changes.first(), Some(change));
                prop_assert_eq!(&before.validators.set, &after.validators.set);
                prop_assert!(!why.is_empty());
            }
            Event::ProposalExecuted { proposal, status } => {
                let p = &after.governance.proposals[proposal];
                prop_assert_eq!(&p.status, status);
                let was_due = matches!(
                    before.governance.proposals[proposal].status,
                    engine::ProposalStatus::Scheduled { at } if at <= entry.time.max(before.now)
                );
                prop_assert!(was_due);
                prop_assert!(!after.gov_schedule.effective_at.contains_key(proposal));
            }
            Event::ProposalDecided { proposal, status } => {
                let p = &after.governance.proposals[proposal];
                prop_assert_eq!(&p.status, status);
                prop_assert!(p.tally.is_some());
                let t = p.tally.as_ref().unwrap();
                prop_assert!(t.yes + t.no + t.abstain + t.veto <= t.total);
                prop_assert!(*status != engine::ProposalStatus::Voting);
            }
            Event::CommissionSet {
                provider,
                commission_bps,
            } => {
                prop_assert!(*commission_bps <= after.staking_params().max_commission_bps);
                prop_assert_eq!(
                    after.delegation.pools[provider].commission_bps,
                    *commission_bps
                );
                let was = before
                    .pool(provider)
                    .map_or(engine::DEFAULT_COMMISSION_BPS, |p| p.commission_bps);
                let had = before.pool(provider).is_some_and(|p| p.delegators > 0);
                prop_assert!(
                    !had || *commission_bps <= was + before.staking_params().commission_step_bps
                );
            }
            Event::StakeReleased { account, amount } => {
                prop_assert_eq!(after.balance(account), before.balance(account) + amount);
                prop_assert_eq!(after.releasable(account, after.now), 0);
            }
            Event::Slashed {
                provider,
                amount,
                evidence,
                ..
            } => {
                // Rules 25: and its pool's, bonded and unbonding.
                let pooled = before.pool(provider).map_or(0, |p| {
                    p.tokens + p.unbonding.iter().map(|u| u.amount).sum::<u128>()
                });
                prop_assert!(
                    *amount
                        <= before.bonded(provider)
                            + pooled
                            + before.accounts.get(provider).map_or(0, |a| a
                                .unbonding
                                .iter()
                                .map(|u| u.amount)
                                .sum())
                );
                prop_assert_ne!(evidence.wrong_output, evidence.agreed_output);
                // Rules 30: a tolerant task's loser is slashed only for an output outside the
                // tolerance of the agreed one.
                if let (Some(tolerance), Some(outputs)) = (
                    before.tolerance(evidence.task.job),
                    after
                        .tolerances
                        .outputs
                        .get(&evidence.task)
                        .or(before.tolerances.outputs.get(&evidence.task)),
                ) && let (Some(wrong), Some(agreed)) = (
                    outputs.get(&evidence.wrong_output),
                    outputs.get(&evidence.agreed_output),
                ) {
                    prop_assert!(!tolerance.agree(&wrong.0, &agreed.0));
                }
                prop_assert!(!evidence.agreeing.contains(provider));
                // Rules 13: a private job's verdicts never slash (its requester chose the jury).
                prop_assert!(
                    !before.private_job(evidence.task.job),
                    "a slash on private job {}",
                    evidence.task.job
                );
                let task = &after.jobs[&evidence.task.job].tasks[evidence.task.index as usize];
                match &task.result {
                    Some(r) => prop_assert_eq!(r.output_hash, evidence.agreed_output),
                    // Rules 19: a reduce dropped in this entry, its job's maps reopened.
                    None if reopened.contains(&evidence.task) => {
                        prop_assert_eq!(&task.state, &TaskState::Dropped);
                    }
                    // Rules 3: a verified failure, which every agreeing member reported.
                    None => {
                        prop_assert_eq!(&task.state, &TaskState::Failed);
                        for member in &evidence.agreeing {
                            let reported = task.runs.iter().any(|r| {
                                r.provider == *member
                                    && matches!(&r.outcome, RunOutcome::Failure { outcome, fuel_used, .. }
                                        if engine::failure_key(outcome, *fuel_used) == Some(evidence.agreed_output))
                            });
                            prop_assert!(
                                reported,
                                "{} agreed on a failure it did not report",
                                member
                            );
                        }
                    }
                }
            }
            Event::ValidatorVoted { validator, .. } => {
                prop_assert!(before.validators.set.get(validator).is_some());
            }
            Event::ValidatorSetChanged { change, validators } => {
                // (Rules 26: proposals decided at one entry may change it more than once.)
                let last = !events[i + 1..]
                    .iter()
                    .any(|e| matches!(e, Event::ValidatorSetChanged { .. }));
                prop_assert!(
                    !last || after.validators.set.validators.len() == *validators as usize
                );
                prop_assert!(after.validators.set.validate().is_ok());
                match change {
                    engine::ValidatorChange::Add(v) => {
                        prop_assert!(after.validators.set.get(&v.account).is_some());
                        // Rules 27: its delegators' stake counts.
                        let stake = if after.rules >= 27 {
                            after.backing(&v.account)
                        } else {
                            after.bonded(&v.account)
                        };
                        prop_assert!(stake >= after.ledger.min_stake);
                    }
                    engine::ValidatorChange::Remove(a) => {
                        prop_assert!(after.validators.set.get(a).is_none());
                        prop_assert!(!after.validators.set.validators.is_empty());
                    }
                }
            }
            Event::ValidatorSlashed {
                validator,
                amount,
                to_treasury,
                burned,
                ..
            } => {
                let stake = |st: &State| {
                    st.bonded(validator)
                        + st.accounts
                            .get(validator)
                            .map_or(0, |a| a.unbonding.iter().map(|u| u.amount).sum::<u128>())
                };
                prop_assert!(before.validators.set.get(validator).is_some());
                prop_assert!(!before.validators.equivocated.contains_key(validator));
                prop_assert!(after.validators.equivocated.contains_key(validator));
                prop_assert_eq!(amount, &(to_treasury + burned));
                // Rules 27: its pool's part follows.
                let pooled = match events.get(i + 1) {
                    Some(Event::DelegationSlashed {
                        provider: q,
                        amount,
                    }) if q == validator => *amount,
                    _ => 0,
                };
                prop_assert!(pooled == 0 || after.rules >= 27);
                prop_assert_eq!(stake(after) + amount - pooled, stake(before));
            }
            Event::ResultRejected {
                task,
                provider,
                output_hash,
                agreed_output,
            } => {
                prop_assert_ne!(output_hash, agreed_output);
                // The streak starts again from zero; results of the same report accepted
                // after this one count towards the new streak.
                let later = events
                    .iter()
                    .skip_while(|e| !std::ptr::eq(*e, event))
                    .filter(|e| match e {
                        Event::TaskAccepted { providers, .. } => providers.contains(provider),
                        // Rules 3: a verified failure counts for its members too.
                        Event::TaskFailed { task: t, .. } => after.jobs[&t.job].tasks
                            [t.index as usize]
                            .runs
                            .iter()
                            .any(|r| {
                                r.provider == *provider
                                    && matches!(r.outcome, RunOutcome::Failure { .. })
                            }),
                        _ => false,
                    })
                    .count();
                prop_assert!(after.providers[provider].reputation.streak as usize <= later);
                // Accepted, or (rules 3) failed by a verified failure.
                let state = after.jobs[&task.job].tasks[task.index as usize]
                    .state
                    .clone();
                prop_assert!(
                    state == TaskState::Done
                        || (state == TaskState::Failed && after.rules >= 3)
                        || reopened.contains(task),
                    "{} rejected a result while {:?}",
                    task,
                    state
                );
            }
            Event::TaskAccepted {
                task, providers, ..
            } => {
                let t = &after.jobs[&task.job].tasks[task.index as usize];
                // (Unless rules 16 reopened it within the same entry, or, for a reduce, one of
                // its job's maps: rules 19 then drops the reduce.)
                if reopened.contains(task) {
                    continue;
                }
                prop_assert_eq!(t.state.clone(), TaskState::Done);
                prop_assert_eq!(t.result.as_ref().map(|r| &r.providers), Some(providers));
                let policy = after.jobs[&task.job].spec.redundancy;
                if let Redundancy::Fixed { quorum, .. } = policy {
                    prop_assert!(providers.len() >= quorum as usize);
                }
            }
            Event::SpotCheck { task, .. } => {
                prop_assert!(after.jobs[&task.job].tasks[task.index as usize].spot_check);
            }
            // Rules 16: only a result accepted alone from a provider slashed by this entry, in an
            // adaptive job still open, is reopened.
            Event::ResultReopened { task, provider, .. } => {
                prop_assert!(after.rules >= 16);
                let slashed = events
                    .iter()
                    .any(|e| matches!(e, Event::Slashed { provider: p, .. } if p == provider));
                prop_assert!(slashed, "{} reopened without a slash", task);
                let job = &after.jobs[&task.job];
                prop_assert!(job.spec.redundancy == Redundancy::Adaptive);
                prop_assert!(!job.status.is_finished());
                let alone = |s: &State| {
                    s.jobs.get(&task.job).is_some_and(|j| {
                        j.tasks[task.index as usize]
                            .result
                            .as_ref()
                            .is_some_and(|r| r.providers == [*provider])
                    })
                };
                // Accepted earlier in this entry: alone, or (rules 19) by providers all caught
                // lying by now.
                let accepted_now = events.iter().any(|e| {
                    matches!(e, Event::TaskAccepted { task: t, providers, .. }
                        if t == task && (providers == &[*provider]
                            || (after.rules >= 19
                                && providers.contains(provider)
                                && providers
                                    .iter()
                                    .all(|m| after.providers[m].stats.times_slashed > 0))))
                });
                // Rules 19: or agreed on by providers all caught lying by now.
                let on_caught = after.rules >= 19
                    && before.jobs.get(&task.job).is_some_and(|j| {
                        j.tasks[task.index as usize]
                            .result
                            .as_ref()
                            .is_some_and(|r| {
                                r.providers.contains(provider)
                                    && r.providers
                                        .iter()
                                        .all(|m| after.providers[m].stats.times_slashed > 0)
                            })
                    });
                prop_assert!(
                    alone(before) || accepted_now || on_caught,
                    "{} was not accepted alone",
                    task
                );
            }
            Event::ProviderAnnounced {
                provider,
                suspended,
            } => {
                prop_assert!(after.rules >= 24);
                prop_assert_eq!(after.providers[provider].status, ProviderStatus::Active);
                prop_assert_eq!(after.is_suspended(provider), !suspended.is_empty());
            }
            Event::JobReopened { job, results } => {
                prop_assert!(after.rules >= 19);
                prop_assert!(before.correctable(*job), "job {} was not correctable", job);
                prop_assert_eq!(after.jobs[job].status.clone(), JobStatus::Running);
                prop_assert_eq!(after.jobs[job].finished_at, None);
                let reopened = events
                    .iter()
                    .filter(|e| matches!(e, Event::ResultReopened { task, .. } if task.job == *job))
                    .count();
                prop_assert_eq!(reopened, *results as usize);
                let was = before.corrected.get(job).copied().unwrap_or(0);
                prop_assert_eq!(after.corrected.get(job).copied(), Some(was + results));
            }
            Event::ReplicasQueued { task, reason, .. } => {
                if reason.starts_with("straggler") {
                    let t = &after.jobs[&task.job].tasks[task.index as usize];
                    prop_assert_eq!(t.queued, 1);
                    prop_assert!(after.recheck.contains(task));
                    prop_assert!(before.queue.is_empty());
                }
            }
            Event::TaskFailed { task, .. } => {
                prop_assert_eq!(
                    after.jobs[&task.job].tasks[task.index as usize]
                        .state
                        .clone(),
                    TaskState::Failed
                );
            }
        }
    }
    if let Input::Signed(signed) = &entry.input
        && let Action::ReportResults(reports) = &signed.body
    {
        let per_report = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::TaskCompleted { .. }
                        | Event::TaskAttemptFailed { .. }
                        | Event::ReportIgnored { .. }
                )
            })
            .count();
        prop_assert_eq!(per_report, reports.len(), "one event per report");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        // Next to this file, inside `tests/`.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_command_sequences_keep_invariants_and_replay(
        // Every provider stakes and tries to register first, so that most cases get to
        // assignments.
        // Rules 25: and the rich requester backs it, so that slashes reach delegators.
        prologue in [0u8, 1, 2, 3].map(|p| {
            (
                step_with(Just(Op::Stake { who: p, amount: 60 })),
                step_with(register(Just(p))),
                step_with(Just(Op::Delegate { who: 4, p, amount: 40 })),
            )
        }),
        steps in proptest::collection::vec(step(), 0..90),
        // With a validator set (tasks go out on fetches only, providers are lost on
        // attestations) or a single coordinator's chain (assignment and loss on its word).
        validators in any::<bool>(),
    ) {
        let all: Vec<Step> = prologue
            .into_iter()
            .flat_map(|(stake, register, delegate)| [stake, register, delegate])
            .chain(steps)
            .collect();
        run(&all, validators)?;
    }

    /// Rules 26: as above, after a rich delegator proposed a fee change that takes effect a
    /// while after its vote, and voted for it: it passes, waits, and takes effect (or fails)
    /// among random inputs.
    #[test]
    fn random_sequences_around_a_scheduled_proposal_keep_invariants_and_replay(
        prologue in [0u8, 1, 2, 3].map(|p| {
            (
                step_with(Just(Op::Stake { who: p, amount: 60 })),
                step_with(register(Just(p))),
            )
        }),
        proposal in (
            step_with(Just(Op::Delegate { who: 4, p: 0, amount: 100_000 })),
            step_with((0..7u8, 0..12_000u32, 2_000..20_000u64).prop_map(|(kind, value, delay)| {
                Op::Propose { who: 4, kind, value, deposit: 100, delay_ms: Some(delay) }
            })),
            step_with(Just(Op::Vote { who: 4, proposal: 0, option: 0 })),
        ),
        steps in proptest::collection::vec(step(), 0..90),
        validators in any::<bool>(),
    ) {
        let all: Vec<Step> = prologue
            .into_iter()
            .flat_map(|(stake, register)| [stake, register])
            .chain([proposal.0, proposal.1, proposal.2])
            .chain(steps)
            .collect();
        run(&all, validators)?;
    }

    /// Rules 26: as above, with a requester's lease on provider 0 and a job of its from the
    /// start, so that its tasks run covered, periods are paid and renewed, and leases end in every way.
    #[test]
    fn random_sequences_around_a_lease_keep_invariants_and_replay(
        prologue in [0u8, 1, 2, 3].map(|p| {
            (
                step_with(Just(Op::Stake { who: p, amount: 60 })),
                step_with(register(Just(p))),
            )
        }),
        lease in (step_with(Just(Op::Reserve {
            who: 0,
            slots: 2,
            periods: 3,
            period_ms: 600_000,
            price: 50,
            region: false,
        })), step_with(Just(Op::AcceptReservation { p: 0, pick: 0, slots: 1 })),
            // A job of its that only the lease pays for, trusting one result.
            step_with(Just(Op::Submit {
                owner: 0,
                tasks: 3,
                reduce: false,
                memory: 16 * MIB,
                reduce_memory: 16 * MIB,
                max_price: 0,
                deadline_in: 300,
                redundancy: 0,
            }))),
        steps in proptest::collection::vec(step(), 0..90),
        validators in any::<bool>(),
    ) {
        let all: Vec<Step> = prologue
            .into_iter()
            .flat_map(|(stake, register)| [stake, register])
            .chain([lease.0, lease.1, lease.2])
            .chain(steps)
            .collect();
        run(&all, validators)?;
    }
}

/// One step of the verification property: provider `p` (of seven) fetches work, reports what it
/// holds, or disappears and comes back; or the requester submits a job.
#[derive(Clone, Debug)]
enum VStep {
    Fetch {
        p: u8,
        max: u32,
    },
    ReportAll {
        p: u8,
    },
    Lost {
        p: u8,
    },
    Register {
        p: u8,
    },
    Submit {
        tasks: usize,
        policy: u8,
    },
    /// A long pause, then the leader speculates on the stragglers.
    Speculate,
    /// Rules 5: the leader's beacon, as it is due.
    Beacon,
}

fn vstep() -> impl Strategy<Value = VStep> {
    vstep_of(1..4usize)
}

/// [`vstep`] with jobs of `tasks` tasks.
fn vstep_of(tasks: std::ops::Range<usize>) -> impl Strategy<Value = VStep> {
    prop_oneof![
        8 => (0..7u8, 1..4u32).prop_map(|(p, max)| VStep::Fetch { p, max }),
        8 => (0..7u8).prop_map(|p| VStep::ReportAll { p }),
        1 => (0..7u8).prop_map(|p| VStep::Lost { p }),
        1 => (0..7u8).prop_map(|p| VStep::Register { p }),
        2 => (tasks, any::<u8>()).prop_map(|(tasks, policy)| VStep::Submit { tasks, policy }),
        3 => Just(VStep::Speculate),
        4 => Just(VStep::Beacon),
    ]
}

fn vprovider(p: u8) -> AccountId {
    acct(40 + p % 7)
}

/// The honest output of a task, and the one colluders agree on.
fn honest_output(t: TaskId) -> engine::Hash {
    hash(((t.job as u8).wrapping_mul(16) ^ t.index as u8) & 0x7F)
}

fn colluders_output(t: TaskId) -> engine::Hash {
    hash(((t.job as u8).wrapping_mul(16) ^ t.index as u8) | 0x80)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    })]

    /// Seven providers, of which `colluders` (at most two) always return the same wrong output,
    /// under any interleaving of fetches, reports, losses and submissions: no job ever accepts a
    /// wrong result under the adaptive policy or 3-of-5 voting, every accepted colluder result
    /// is impossible, every colluder result that meets an accepted honest one is rejected and
    /// slashed, and the requester never pays more than one execution per task.
    #[test]
    fn colluding_minorities_never_get_a_wrong_result_accepted(
        colluders in proptest::sample::subsequence(vec![0u8, 1, 2, 3, 4, 5, 6], 0..=2),
        steps in proptest::collection::vec(vstep(), 1..150),
    ) {
        let cheat: BTreeSet<AccountId> = colluders.iter().map(|p| vprovider(*p)).collect();
        let s = verification_walk(&cheat, &BTreeSet::new(), &steps, &mut |_, _, events| {
            for e in events {
                match e {
                    Event::TaskAccepted { task, output_hash, providers, .. } => {
                        prop_assert_eq!(*output_hash, honest_output(*task), "wrong result accepted for {}", task);
                        prop_assert!(providers.iter().all(|p| !cheat.contains(p)));
                    }
                    Event::ResultRejected { provider, .. } => prop_assert!(cheat.contains(provider)),
                    _ => {}
                }
            }
            Ok(())
        })?;
        // Every job that ended well carries honest outputs only.
        for job in s.jobs.values() {
            if job.status == JobStatus::Completed {
                for (i, t) in job.tasks.iter().enumerate() {
                    let id = tid(job.id, i as u32);
                    prop_assert_eq!(t.result.as_ref().map(|r| r.output_hash), Some(honest_output(id)));
                }
            }
        }
    }

    /// Rules 16: seven providers, of which `turncoats` (one to three, proven: audited at the
    /// floor once trusted) answer honestly until they are trusted and then wrong on every task of
    /// odd index, and `colluders` always wrong: whenever a
    /// provider is slashed, no adaptive job still gathering its map results keeps a result
    /// accepted from that provider alone (backtracking reopened them all), and money and events
    /// agree with every state change.
    #[test]
    fn a_slashed_providers_lone_results_never_stand_in_an_open_job(
        colluders in proptest::sample::subsequence(vec![0u8, 1, 2, 3, 4, 5, 6], 0..=1),
        turncoats in proptest::sample::subsequence(vec![0u8, 1, 2, 3, 4, 5, 6], 1..=3),
        // Jobs long enough to be open when a turncoat is caught.
        steps in proptest::collection::vec(vstep_of(4..16), 1..250),
    ) {
        let cheat: BTreeSet<AccountId> = colluders.iter().map(|p| vprovider(*p)).collect();
        let turn: BTreeSet<AccountId> = turncoats
            .iter()
            .map(|p| vprovider(*p))
            .filter(|p| !cheat.contains(p))
            .collect();
        verification_walk(&cheat, &turn, &steps, &mut |_, after, events| {
            for e in events {
                let Event::Slashed { provider, .. } = e else {
                    continue;
                };
                for job in after.jobs.values() {
                    let open = !job.status.is_finished()
                        && job.spec.redundancy == Redundancy::Adaptive
                        && (job.maps_done as usize) < job.spec.tasks.len();
                    if !open {
                        continue;
                    }
                    for (i, t) in job.tasks.iter().enumerate() {
                        let alone = t.result.as_ref().is_some_and(|r| r.providers == [*provider]);
                        prop_assert!(!alone, "{}: slashed {:?}'s lone result stands", tid(job.id, i as u32), provider);
                    }
                }
            }
            Ok(())
        })?;
    }
}

/// What a verification walk's caller checks of each accepted entry: the state before and after,
/// and its events.
type OnEvents<'a> = dyn FnMut(&State, &State, &[Event]) -> Result<(), TestCaseError> + 'a;

/// The walk of the verification properties: seven providers stake and register, then `steps`
/// run; `cheat` always answers the colluders' output, `turncoats` (proven: audited at the floor)
/// the same on tasks of odd index once trusted, the others the honest one. `on_events` sees each accepted entry's state before and after and its
/// events (money and events are checked against the state change, and the invariants after
/// every step). The final state.
fn verification_walk(
    cheat: &BTreeSet<AccountId>,
    turncoats: &BTreeSet<AccountId>,
    steps: &[VStep],
    on_events: &mut OnEvents,
) -> Result<State, TestCaseError> {
    let mut allocations = BTreeMap::new();
    for p in 0..7 {
        allocations.insert(vprovider(p), 1_000);
    }
    allocations.insert(acct(11), 100_000_000);
    let genesis = Genesis {
        verification: VerifyParams {
            trust_after: 2,
            spot_check_bps: 5_000,
            ..VerifyParams::default()
        },
        allocations,
        // Jobs without a storage claim (a network that prices storage refuses them).
        storage: None,
        ..genesis()
    };
    let mut s = State::from_genesis(&genesis).expect("valid genesis");
    let mut time: Time = 1000;
    let mut nonce = 0u64;
    let mut next = |s: &State, who: AccountId| {
        nonce = nonce.max(s.nonce(&who)) + 1;
        nonce
    };
    let mut apply = |s: &mut State, input: Input, time: Time| -> Result<(), TestCaseError> {
        let before = s.clone();
        if let Ok(events) = s.apply(&entry(time, input.clone())) {
            check_money(&before, s, &events)?;
            check_events(&before, s, &entry(time, input), &events)?;
            on_events(&before, s, &events)?;
        }
        check_invariants(s)?;
        Ok(())
    };
    for p in 0..7 {
        let who = vprovider(p);
        let n = next(&s, who);
        apply(&mut s, signed(who, n, Action::Stake { amount: 100 }), time)?;
        let n = next(&s, who);
        apply(
            &mut s,
            signed(
                who,
                n,
                Action::RegisterProvider(ProviderSpec {
                    slots: 2,
                    cores: 2,
                    memory_bytes: 1 << 30,
                    gpu: None,
                    benchmark_score: 1,
                    region: "r".into(),
                    price_per_fuel: 1,
                    operator: None,
                }),
            ),
            time,
        )?;
        // Rules 25: every other provider is backed by a delegator, who shares its slashes.
        if p % 2 == 0 {
            let n = next(&s, acct(11));
            apply(
                &mut s,
                signed(
                    acct(11),
                    n,
                    Action::Delegate {
                        provider: who,
                        amount: 300,
                    },
                ),
                time,
            )?;
        }
    }
    let lies = |s: &State, who: &AccountId| {
        cheat.contains(who) || (turncoats.contains(who) && s.is_trusted(who))
    };
    let lies = |s: &State, who: &AccountId, t: &TaskId| {
        lies(s, who) && (cheat.contains(who) || t.index % 2 == 1)
    };
    for step in steps {
        // Turncoats are proven: the first time they are trusted they are audited at the
        // network's floor, as if they had passed many audits, so that their lone results are
        // accepted as often as not. (Passed audits from the start would stop anyone earning
        // trust: agreement builds it only with a trusted member once an audited provider is
        // around.)
        for who in turncoats {
            if s.is_trusted(who) && !s.audits.passed.contains_key(who) {
                s.audits.passed.insert(*who, 200);
            }
        }
        time += 5;
        let input = match step {
            VStep::Fetch { p, max } => {
                let who = vprovider(*p);
                if s.pick(who, *max).is_empty() {
                    continue;
                }
                fetch_input(who, next(&s, who), *max)
            }
            VStep::ReportAll { p } => {
                let who = vprovider(*p);
                let held: Vec<TaskId> = s.providers[&who].running.iter().copied().collect();
                if held.is_empty() {
                    continue;
                }
                let reports = held
                    .iter()
                    .map(|t| TaskReport {
                        task: *t,
                        outcome: TaskOutcome::Success,
                        output_hash: if lies(&s, &who, t) {
                            colluders_output(*t)
                        } else {
                            honest_output(*t)
                        },
                        output_size: 8,
                        fuel_used: 10,
                    })
                    .collect();
                signed(who, next(&s, who), Action::ReportResults(reports))
            }
            VStep::Lost { p } => lost_input(&s, vprovider(*p), time),
            VStep::Register { p } => {
                let who = vprovider(*p);
                let spec = s.providers[&who].spec.clone();
                signed(who, next(&s, who), Action::RegisterProvider(spec))
            }
            VStep::Speculate => {
                time += 20_000;
                let tasks = s.stragglers(time);
                if tasks.is_empty() {
                    continue;
                }
                Input::Leader(LeaderCommand::Speculate { tasks })
            }
            VStep::Beacon => match s.beacon_due(&[7; 32]) {
                Some(command) => Input::Leader(command),
                None => continue,
            },
            VStep::Submit { tasks, policy } => {
                let redundancy = if policy % 3 == 0 {
                    Redundancy::Fixed {
                        quorum: 3,
                        max_results: 5,
                    }
                } else {
                    Redundancy::Adaptive
                };
                let spec = JobSpec {
                    redundancy,
                    ..job_spec(*tasks, false, MIB, MIB, 10, 1_000_000)
                };
                signed(acct(11), next(&s, acct(11)), Action::SubmitJob(spec))
            }
        };
        apply(&mut s, input, time)?;
    }
    Ok(s)
}
