//! NaN bits that reach memory and the output, under both profiles: every way a guest can look at
//! a NaN's bits gives the canonical NaN, so a run's output and fuel are the same on any host
//! (x86 makes `0/0` the negative NaN, ARM the positive one; a NaN operand's payload is kept by
//! some machines and not others). On x86 the stock-wasmtime cases show what the canonicalization
//! changes: without it the same module prints other bits here.

use sandbox::baseline::{Baseline, Nans, Settings};
use sandbox::{Outcome, Profile, SandboxConfig};

use super::{guest, run, task};

/// One observation: its name and what it leaves in its 8-byte slot.
const CASES: [(&str, u64); 18] = [
    ("f64.store of 0/0", 0x7ff8_0000_0000_0000),
    ("f32.store of 0/0", 0x7fc0_0000),
    ("i64.reinterpret_f64 of 0/0", 0x7ff8_0000_0000_0000),
    ("i32.reinterpret_f32 of 0/0", 0x7fc0_0000),
    ("copysign(1, 0/0)", 0x3ff0_0000_0000_0000),
    (
        "payload of a NaN operand, 1 + nan:0x4000000000001",
        0x7ff8_0000_0000_0000,
    ),
    (
        "through a local, a global, a call and a select",
        0x7ff8_0000_0000_0000,
    ),
    ("f64.min(0/0, 1)", 0x7ff8_0000_0000_0000),
    ("f32.demote_f64 of 0/0", 0x7fc0_0000),
    ("f64.promote_f32 of f32 0/0", 0x7ff8_0000_0000_0000),
    ("f64.sqrt(-1)", 0x7ff8_0000_0000_0000),
    ("i64.trunc_sat_f64_s of 0/0", 0),
    (
        "f64x2.div(0, 0), lane 0 stored as v128",
        0x7ff8_0000_0000_0000,
    ),
    (
        "f64x2.div(0, 0), lane 1 stored as v128",
        0x7ff8_0000_0000_0000,
    ),
    ("f32x4.splat of 0/0, i32 lane 2", 0x7fc0_0000),
    (
        "f64x2.replace_lane of 0/0, i64 lane 1",
        0x7ff8_0000_0000_0000,
    ),
    ("f32x4.sqrt(-1), i32 lane 0", 0x7fc0_0000),
    (
        "a signalling NaN copied by f64.load and f64.store",
        0x7ff4_0000_0000_0001,
    ),
];

/// Writes each of [`CASES`] to its 8-byte slot from 0x3000 (zeroed first) and prints them.
fn nan_guest() -> Vec<u8> {
    guest(
        r#"(global $g (mut f64) (f64.const 0))
           (data (i32.const 0x2f00) "\01\00\00\00\00\00\f4\7f")
           (func $id (param f64) (result f64) (local.get 0))
           (func (export "_start") (local $x f64) (local $zero f64) (local $one f64)
             (local.set $one (f64.const 1))
             (f64.store (i32.const 0x3000) (f64.div (local.get $zero) (local.get $zero)))
             (f32.store (i32.const 0x3008) (f32.div (f32.const 0) (f32.demote_f64 (local.get $zero))))
             (i64.store (i32.const 0x3010)
               (i64.reinterpret_f64 (f64.div (local.get $zero) (local.get $zero))))
             (i32.store (i32.const 0x3018)
               (i32.reinterpret_f32 (f32.div (f32.demote_f64 (local.get $zero)) (f32.const 0))))
             (f64.store (i32.const 0x3020)
               (f64.copysign (local.get $one) (f64.div (local.get $zero) (local.get $zero))))
             (f64.store (i32.const 0x3028) (f64.add (local.get $one) (f64.const nan:0x4000000000001)))
             (local.set $x (f64.div (local.get $zero) (local.get $zero)))
             (global.set $g (local.get $x))
             (f64.store (i32.const 0x3030)
               (select (call $id (global.get $g)) (local.get $one) (i32.const 1)))
             (f64.store (i32.const 0x3038)
               (f64.min (f64.div (local.get $zero) (local.get $zero)) (local.get $one)))
             (f32.store (i32.const 0x3040)
               (f32.demote_f64 (f64.div (local.get $zero) (local.get $zero))))
             (f64.store (i32.const 0x3048)
               (f64.promote_f32 (f32.div (f32.demote_f64 (local.get $zero)) (f32.const 0))))
             (f64.store (i32.const 0x3050) (f64.sqrt (f64.neg (local.get $one))))
             (i64.store (i32.const 0x3058)
               (i64.trunc_sat_f64_s (f64.div (local.get $zero) (local.get $zero))))
             (v128.store (i32.const 0x3060)
               (f64x2.div (v128.const f64x2 0 0) (f64x2.splat (local.get $zero))))
             (i32.store (i32.const 0x3070)
               (i32x4.extract_lane 2 (f32x4.splat (f32.div (f32.const 0) (f32.const 0)))))
             (i64.store (i32.const 0x3078)
               (i64x2.extract_lane 1 (f64x2.replace_lane 1 (v128.const f64x2 1 1)
                 (f64.div (local.get $zero) (local.get $zero)))))
             (i32.store (i32.const 0x3080)
               (i32x4.extract_lane 0 (f32x4.sqrt (f32x4.splat (f32.const -1)))))
             (f64.store (i32.const 0x3088) (f64.load (i32.const 0x2f00)))
             (drop (call $write (i32.const 1) (i32.const 0x3000) (i32.const 144))))"#,
    )
}

/// The 8-byte slots of a run's output.
fn slots(output: &[u8]) -> Vec<u64> {
    assert_eq!(output.len(), CASES.len() * 8, "output: {output:?}");
    output
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn assert_canonical(profile: &str, got: &[u64]) {
    for ((name, want), got) in CASES.iter().zip(got) {
        assert_eq!(
            *got, *want,
            "{profile}: {name}: {got:#018x}, the canonical answer is {want:#018x}"
        );
    }
}

#[test]
fn every_observed_nan_is_canonical_under_every_profile_and_runs_agree() {
    let wasm = nan_guest();
    let mut fuels = Vec::new();
    for profile in Profile::ALL {
        let sb = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
        let prepared = sb.prepare_for(&wasm, profile).unwrap();
        assert_eq!(prepared.profile(), profile);
        let first = sb.run(&prepared, &task()).unwrap();
        assert_eq!(first.outcome, Outcome::Exited(0), "{profile:?}");
        assert_canonical(&format!("{profile:?}"), &slots(&first.output));
        // Another sandbox (another place) agrees bit for bit, fuel included.
        let other = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
        let second = other
            .run(&other.prepare_for(&wasm, profile).unwrap(), &task())
            .unwrap();
        assert_eq!(second.output, first.output);
        assert_eq!(second.fuel_used, first.fuel_used, "{profile:?}");
        fuels.push(first.fuel_used);
    }
    // The rewrite's instructions are metered: the profiles count different fuel, which is why a
    // network's rules name one.
    assert!(fuels[1] > fuels[0], "fuel per profile: {fuels:?}");
    // Profile 3 meters the same instructions as profile 2 (the guest has no counted loop, no
    // bulk operation and nothing to initialize), by the rewrite instead of wasmtime.
    assert_eq!(fuels[2], fuels[1], "fuel per profile: {fuels:?}");

    // Bare wasmtime with each profile's canonicalization prints the same bits.
    for nans in [Nans::EveryFloat, Nans::Observed] {
        let bare = Baseline::with(Settings {
            nans,
            ..Settings::default()
        })
        .unwrap();
        let report = bare.run(&bare.compile(&wasm).unwrap(), &[]).unwrap();
        assert_canonical(&format!("bare wasmtime, {nans:?}"), &slots(&report.stdout));
    }
}

/// Without canonicalization this host shows other bits: the test above could fail.
#[cfg(target_arch = "x86_64")]
#[test]
fn without_canonicalization_x86_shows_the_machines_nans() {
    let bare = Baseline::new().unwrap();
    let wasm = nan_guest();
    let got = slots(&bare.run(&bare.compile(&wasm).unwrap(), &[]).unwrap().stdout);
    // x86's default NaN is negative; copysign takes its sign; an operand's payload is kept.
    assert_eq!(got[0], 0xfff8_0000_0000_0000);
    assert_eq!(got[4], 0xbff0_0000_0000_0000);
    assert_eq!(got[5], 0x7ffc_0000_0000_0001);
}

/// The 8 bytes a `_start` of `body`'s kind (writing them from 0x3000) prints, per profile.
fn bits_per_profile(start: &str) -> Vec<u64> {
    let wasm = guest(&format!(
        r#"(func (export "_start") {start}
             (drop (call $write (i32.const 1) (i32.const 0x3000) (i32.const 8))))"#
    ));
    let sb = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
    Profile::ALL
        .into_iter()
        .map(|profile| {
            let report = sb
                .run(&sb.prepare_for(&wasm, profile).unwrap(), &task())
                .unwrap();
            u64::from_le_bytes(report.output.try_into().unwrap())
        })
        .collect()
}

#[test]
fn a_flipped_sign_is_canonicalized_only_where_observed() {
    // -(0/0): Cranelift canonicalizes the division, then `neg` flips the sign of the canonical
    // NaN (profile 1 stores the negative NaN, the same everywhere); profile 2 canonicalizes at
    // the store. Both deterministic; they differ, one more reason the profile is in the rules.
    let scalar = bits_per_profile(
        r#"(local $zero f64)
           (f64.store (i32.const 0x3000) (f64.neg (f64.div (local.get $zero) (local.get $zero))))"#,
    );
    assert_eq!(
        scalar,
        [
            0xfff8_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff8_0000_0000_0000
        ]
    );
    // The same as f64x2: profiles 2 and 3 canonicalize the division at once, as Cranelift does
    // under profile 1, and `neg` flips that; profiles 4 and 5 canonicalize at the store.
    let vector = bits_per_profile(
        r#"(local $zero v128)
           (v128.store (i32.const 0x3000)
             (f64x2.neg (f64x2.div (local.get $zero) (local.get $zero))))"#,
    );
    assert_eq!(
        vector,
        [
            0xfff8_0000_0000_0000,
            0xfff8_0000_0000_0000,
            0xfff8_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0x7ff8_0000_0000_0000
        ]
    );
}

#[test]
fn the_latest_profile_is_what_prepare_uses_and_profiles_are_numbered() {
    let sb = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
    let report = run(&sb, &nan_guest(), &task());
    assert_canonical("prepare", &slots(&report.output));
    assert_eq!(sb.prepare(&nan_guest()).unwrap().profile(), Profile::LATEST);
    for (n, profile) in Profile::ALL.into_iter().enumerate() {
        assert_eq!(profile.number(), n as u32 + 1);
        assert_eq!(Profile::from_number(profile.number()), Some(profile));
    }
    assert_eq!(Profile::from_number(0), None);
    assert_eq!(Profile::from_number(6), None);
}

/// Float vectors whose NaN bits reach memory by every path profile 4 follows them on (a loop's
/// accumulator in a local, a NaN operand's payload, the other lane shape, an integer operation
/// below another operand, a call, a block result, a lane taken out), and an integer vector that
/// looks like a NaN sharing a local with float ones: what each leaves in its 8-byte slot.
const VECTOR_CASES: [(&str, u64); 19] = [
    (
        "f64x2 0/0 accumulated in a loop, lane 0",
        0x7ff8_0000_0000_0000,
    ),
    (
        "f64x2 0/0 accumulated in a loop, lane 1",
        0x7ff8_0000_0000_0000,
    ),
    (
        "f64x2.add(1, nan:0x4000000000001) stored",
        0x7ff8_0000_0000_0000,
    ),
    (
        "f32x4 0/0 read as f64x2 (the other shape) and stored",
        0x7fc0_0000_7fc0_0000,
    ),
    (
        "i64x2.add(f64x2 0/0, 0): the loose operand below",
        0x7ff8_0000_0000_0000,
    ),
    (
        "an f64x2 0/0 passed to a function that stores it",
        0x7ff8_0000_0000_0000,
    ),
    ("an f64x2 0/0 as a block's result", 0x7ff8_0000_0000_0000),
    (
        "f64.store of f64x2.extract_lane of 0/0",
        0x7ff8_0000_0000_0000,
    ),
    (
        "an i64x2 that looks like a signalling NaN, in a local also set from f64x2 0/0",
        0x7ff4_0000_0000_0001,
    ),
    ("that local's f64x2 0/0", 0x7ff8_0000_0000_0000),
    ("f32x4.demote_f64x2_zero of 0/0, i32 lane 0", 0x7fc0_0000),
    ("f32x4 0/0 compared with itself (ne: all ones)", u64::MAX),
    (
        "f64x2.splat of a signalling NaN just loaded, stored",
        0x7ff4_0000_0000_0001,
    ),
    (
        "f64x2.replace_lane of 0/0 into a loose vector, stored",
        0x7ff8_0000_0000_0000,
    ),
    (
        "a signalling NaN just loaded put into a loose f64x2 by replace_lane, stored",
        0x7ff4_0000_0000_0001,
    ),
    (
        "a local an if sets to an i64x2 like a signalling NaN (first time round)",
        0x7ff4_0000_0000_0001,
    ),
    (
        "the same local its else sets to f64x2 0/0 (second time round)",
        0x7ff8_0000_0000_0000,
    ),
    (
        "a loop's local, an i64x2 like a signalling NaN on entry",
        0x7ff4_0000_0000_0001,
    ),
    (
        "the same local, f64x2 0/0 from the iteration before",
        0x7ff8_0000_0000_0000,
    ),
];

fn vector_guest() -> Vec<u8> {
    guest(
        r#"(data (i32.const 0x2f00) "\01\00\00\00\00\00\f4\7f")
           (func $store (param v128) (v128.store (i32.const 0x3028) (local.get 0)))
           (func (export "_start")
             (local $acc v128) (local $zero v128) (local $i i32) (local $mixed v128)
             (local $k i32) (local $m v128)
             ;; a loop's accumulator: loose f64x2 in a local, stored once after the loop
             (loop $l
               (local.set $acc (f64x2.add (local.get $acc)
                 (f64x2.div (local.get $zero) (local.get $zero))))
               (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                 (i32.const 4))))
             (v128.store (i32.const 0x3000) (local.get $acc))
             (i64.store (i32.const 0x3010) (i64x2.extract_lane 0
               (f64x2.add (v128.const f64x2 1 1) (v128.const i64x2 0x7ff4000000000001 0))))
             (v128.store64_lane 0 (i32.const 0x3018)
               (f64x2.add (v128.const f64x2 0 0)
                 (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0))))
             (i64.store (i32.const 0x3020) (i64x2.extract_lane 0
               (i64x2.add (f64x2.div (local.get $zero) (local.get $zero)) (v128.const i64x2 0 0))))
             (call $store (f64x2.div (local.get $zero) (local.get $zero)))
             (i64.store (i32.const 0x3030) (i64x2.extract_lane 1
               (block (result v128) (f64x2.div (local.get $zero) (local.get $zero)))))
             (f64.store (i32.const 0x3038)
               (f64x2.extract_lane 1 (f64x2.div (local.get $zero) (local.get $zero))))
             (local.set $mixed (v128.const i64x2 0x7ff4000000000001 0x7ff4000000000001))
             (i64.store (i32.const 0x3040) (i64x2.extract_lane 0 (local.get $mixed)))
             (local.set $mixed (f64x2.div (local.get $zero) (local.get $zero)))
             (i64.store (i32.const 0x3048) (i64x2.extract_lane 0 (local.get $mixed)))
             (i64.store (i32.const 0x3050) (i64.extend_i32_u (i32x4.extract_lane 0
               (f32x4.demote_f64x2_zero (f64x2.div (local.get $zero) (local.get $zero))))))
             (i64.store (i32.const 0x3058) (i64x2.extract_lane 0
               (f32x4.ne (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0))
                 (f32x4.div (v128.const f32x4 0 0 0 0) (v128.const f32x4 0 0 0 0)))))
             (v128.store64_lane 0 (i32.const 0x3060) (f64x2.splat (f64.load (i32.const 0x2f00))))
             (v128.store64_lane 0 (i32.const 0x3068)
               (f64x2.replace_lane 0
                 (f64x2.mul (v128.const f64x2 1 1) (v128.const f64x2 1 1))
                 (f64.div (f64x2.extract_lane 0 (local.get $zero))
                   (f64x2.extract_lane 1 (local.get $zero)))))
             (v128.store64_lane 1 (i32.const 0x3070)
               (f64x2.replace_lane 1
                 (f64x2.mul (v128.const f64x2 1 1) (v128.const f64x2 1 1))
                 (f64.load (i32.const 0x2f00))))
             ;; control flow merges a local holding exact bits with one holding a loose vector
             (loop $two
               (if (local.get $k)
                 (then (local.set $m (f64x2.div (local.get $zero) (local.get $zero))))
                 (else (local.set $m (v128.const i64x2 0x7ff4000000000001 0x7ff4000000000001))))
               (i64.store (i32.add (i32.const 0x3078) (i32.shl (local.get $k) (i32.const 3)))
                 (i64x2.extract_lane 0 (local.get $m)))
               (br_if $two (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1)))
                 (i32.const 2))))
             (local.set $m (v128.const i64x2 0x7ff4000000000001 0x7ff4000000000001))
             (local.set $k (i32.const 0))
             (loop $carried
               (i64.store (i32.add (i32.const 0x3088) (i32.shl (local.get $k) (i32.const 3)))
                 (i64x2.extract_lane 0 (local.get $m)))
               (local.set $m (f64x2.div (local.get $zero) (local.get $zero)))
               (br_if $carried (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 1)))
                 (i32.const 2))))
             (drop (call $write (i32.const 1) (i32.const 0x3000) (i32.const 152))))"#,
    )
}

#[test]
fn every_observed_vector_nan_is_canonical_under_every_profile_and_runs_agree() {
    let wasm = vector_guest();
    let check = |what: &str, output: &[u8]| {
        assert_eq!(output.len(), VECTOR_CASES.len() * 8, "{what}: {output:?}");
        for ((name, want), got) in VECTOR_CASES.iter().zip(output.chunks(8)) {
            let got = u64::from_le_bytes(got.try_into().unwrap());
            assert_eq!(
                got, *want,
                "{what}: {name}: {got:#018x}, the canonical answer is {want:#018x}"
            );
        }
    };
    let mut fuels = Vec::new();
    for profile in Profile::ALL {
        let sb = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
        let first = sb
            .run(&sb.prepare_for(&wasm, profile).unwrap(), &task())
            .unwrap();
        assert_eq!(first.outcome, Outcome::Exited(0), "{profile:?}");
        check(&format!("{profile:?}"), &first.output);
        let other = sandbox::Sandbox::new(SandboxConfig::default()).unwrap();
        let second = other
            .run(&other.prepare_for(&wasm, profile).unwrap(), &task())
            .unwrap();
        assert_eq!(second.output, first.output, "{profile:?}");
        assert_eq!(second.fuel_used, first.fuel_used, "{profile:?}");
        fuels.push(first.fuel_used);
    }
    // Profile 4 canonicalizes the loop's accumulator once, after it, instead of at every add.
    assert!(fuels[3] < fuels[2], "fuel per profile: {fuels:?}");
    for nans in [Nans::EveryFloat, Nans::Observed, Nans::Tracked] {
        let bare = Baseline::with(Settings {
            nans,
            ..Settings::default()
        })
        .unwrap();
        let report = bare.run(&bare.compile(&wasm).unwrap(), &[]).unwrap();
        check(&format!("bare wasmtime, {nans:?}"), &report.stdout);
    }
}

/// Without canonicalization this host stores other bits for the float vectors (and the same
/// for the integer one): the test above could fail.
#[cfg(target_arch = "x86_64")]
#[test]
fn without_canonicalization_x86_shows_the_machines_vector_nans() {
    let bare = Baseline::new().unwrap();
    let wasm = vector_guest();
    let stdout = bare.run(&bare.compile(&wasm).unwrap(), &[]).unwrap().stdout;
    let got: Vec<u64> = stdout
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(got[0], 0xfff8_0000_0000_0000);
    assert_eq!(got[2], 0x7ffc_0000_0000_0001);
    assert_eq!(got[3], 0xffc0_0000_ffc0_0000);
    assert_eq!(got[8], 0x7ff4_0000_0000_0001);
    assert_eq!(got[9], 0xfff8_0000_0000_0000);
    assert_eq!(got[16], 0xfff8_0000_0000_0000);
    assert_eq!(got[18], 0xfff8_0000_0000_0000);
}
