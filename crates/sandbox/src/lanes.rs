//! Float SIMD results made canonical only where their bits become observable (profile 4).
//!
//! Profiles 2 and 3 canonicalize the result of every float SIMD instruction that can make a NaN
//! at once, because a `v128` is plain bits to whatever instruction comes next: on code built
//! with `-msimd128` that costs more than the vectors gain (`gridmint bench --only kernels`). A
//! scalar `f64` is a float wherever it goes, so its NaN is made canonical only where its bits
//! leave the float domain; a vector's lane shape is not in its type. This rewrite follows it: it
//! walks each function with wasmparser's validator beside it (so it knows the operand stack and
//! its types at every instruction) and tags every vector on the stack *exact* (its bits are the
//! program's own: loaded, constant, made by integer instructions, or already canonical) or
//! *loose* as `f32x4` or `f64x2` (made by a float instruction of that shape, whose NaN lanes'
//! bits this machine chose). A loose vector is made canonical, as its own shape, right before an
//! instruction reads it in any other way than as floats of its shape — a store, an integer or
//! bitwise instruction, a shuffle, a lane taken as an integer, a call, a branch or block result,
//! a global, a `select`, or a float instruction of the other shape. Reading it as floats of its
//! shape reveals nothing: arithmetic makes another loose vector, comparisons and `trunc_sat` see
//! only that a lane is a NaN, a lane taken out as a scalar is then a scalar (canonicalized where
//! observed, [`crate::canon`]), `abs` and `neg` keep it loose. A scalar put into a vector is
//! no longer observed there (profile 3 makes it canonical first): `splat` makes a loose vector
//! (an exact one from a scalar just loaded or written as a constant), `replace_lane` into a
//! loose vector keeps it loose (into an exact one, the scalar is made canonical first).
//!
//! Locals: a `v128` local that every `local.set` and `local.tee` of the function fills with a
//! loose vector of one shape (never an exact one, never a parameter) carries it loose, so a
//! vector accumulated in a loop is made canonical once, where it is stored after the loop; a
//! loose vector put into any other local is made canonical first (that local may hold integer
//! vectors whose bits must be kept). Which locals carry is found by walking the function until
//! nothing changes (what a local is set from only grows, so the walk ends), then once more to
//! write it. Unreachable code is left as it is.

use std::collections::BTreeMap;

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{Function, Instruction, ValType};
use wasmparser::{
    FuncValidator, FuncValidatorAllocations, Operator, Parser, ValidPayload, ValidatorResources,
    WasmFeatures,
};

use crate::canon::{Kind, Locals, body_locals, canonicalize, observes, verbatim};

/// A validator for one function, ready for its body.
pub(crate) type Validator = FuncValidator<ValidatorResources>;

/// One validator per function the module defines, in code-section order. `Err` for a module
/// wasmparser cannot read or validate (the sandbox validated it with wasmtime already).
pub(crate) fn function_validators(wasm: &[u8]) -> Result<Vec<Validator>, String> {
    let mut validator = wasmparser::Validator::new_with_features(WasmFeatures::all());
    let mut validators = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| format!("cannot read the module: {e}"))?;
        let valid = validator
            .payload(&payload)
            .map_err(|e| format!("cannot follow the module's operand stack: {e}"))?;
        if let ValidPayload::Func(func, _) = valid {
            validators.push(func.into_validator(FuncValidatorAllocations::default()));
        }
    }
    Ok(validators)
}

/// How a float SIMD instruction reads vectors, and what it makes.
#[derive(Clone, Copy, Debug)]
enum Lanes {
    /// Reads the top `n` vectors as floats of `reads` and makes a loose vector of `made`.
    Makes { reads: Kind, n: usize, made: Kind },
    /// Reads the top `n` vectors as floats of `reads`; what it makes does not depend on the
    /// bits of a NaN (a comparison's mask, `trunc_sat`, a lane taken out as a scalar).
    Reads { reads: Kind, n: usize },
    /// `abs`, `neg`: the top vector with its signs changed, loose if it was.
    Keeps { reads: Kind },
    /// `replace_lane`: the vector under the scalar, the other lanes kept. Loose if that vector
    /// was, and then the scalar goes in as it is (a NaN in it is made canonical with the
    /// vector's); otherwise the scalar is made canonical first, as profile 3 does.
    Replaces { reads: Kind },
    /// `splat`: a loose vector of `made` from a scalar as it is, or an exact one from a scalar
    /// just loaded or written as a constant.
    Splats { made: Kind },
}

fn lanes(op: &Operator<'_>) -> Option<Lanes> {
    use Kind::{F32x4 as S, F64x2 as D};
    use Operator as O;
    Some(match op {
        O::F32x4Add | O::F32x4Sub | O::F32x4Mul | O::F32x4Div | O::F32x4Min | O::F32x4Max => {
            Lanes::Makes {
                reads: S,
                n: 2,
                made: S,
            }
        }
        O::F64x2Add | O::F64x2Sub | O::F64x2Mul | O::F64x2Div | O::F64x2Min | O::F64x2Max => {
            Lanes::Makes {
                reads: D,
                n: 2,
                made: D,
            }
        }
        O::F32x4Sqrt | O::F32x4Ceil | O::F32x4Floor | O::F32x4Trunc | O::F32x4Nearest => {
            Lanes::Makes {
                reads: S,
                n: 1,
                made: S,
            }
        }
        O::F64x2Sqrt | O::F64x2Ceil | O::F64x2Floor | O::F64x2Trunc | O::F64x2Nearest => {
            Lanes::Makes {
                reads: D,
                n: 1,
                made: D,
            }
        }
        O::F32x4DemoteF64x2Zero => Lanes::Makes {
            reads: D,
            n: 1,
            made: S,
        },
        O::F64x2PromoteLowF32x4 => Lanes::Makes {
            reads: S,
            n: 1,
            made: D,
        },
        O::F32x4Eq | O::F32x4Ne | O::F32x4Lt | O::F32x4Gt | O::F32x4Le | O::F32x4Ge => {
            Lanes::Reads { reads: S, n: 2 }
        }
        O::F64x2Eq | O::F64x2Ne | O::F64x2Lt | O::F64x2Gt | O::F64x2Le | O::F64x2Ge => {
            Lanes::Reads { reads: D, n: 2 }
        }
        O::F32x4ExtractLane { .. } | O::I32x4TruncSatF32x4S | O::I32x4TruncSatF32x4U => {
            Lanes::Reads { reads: S, n: 1 }
        }
        O::F64x2ExtractLane { .. } | O::I32x4TruncSatF64x2SZero | O::I32x4TruncSatF64x2UZero => {
            Lanes::Reads { reads: D, n: 1 }
        }
        O::F32x4Abs | O::F32x4Neg => Lanes::Keeps { reads: S },
        O::F64x2Abs | O::F64x2Neg => Lanes::Keeps { reads: D },
        O::F32x4ReplaceLane { .. } => Lanes::Replaces { reads: S },
        O::F64x2ReplaceLane { .. } => Lanes::Replaces { reads: D },
        O::F32x4Splat => Lanes::Splats { made: S },
        O::F64x2Splat => Lanes::Splats { made: D },
        _ => return None,
    })
}

/// Whether `func` has an instruction that makes a loose vector (otherwise profile 3's rewrite
/// of it is already this one's).
pub(crate) fn makes_float_vectors(
    func: &wasmparser::FunctionBody<'_>,
) -> Result<bool, ReencodeError<String>> {
    let mut reader = func.get_operators_reader()?;
    while !reader.eof() {
        if matches!(lanes(&reader.read()?), Some(Lanes::Makes { .. })) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// What a local was set from, as bits: [`EXACT`], or a loose vector of a kind ([`bit`]).
const EXACT: u8 = 1;

fn bit(tag: Option<Kind>) -> u8 {
    match tag {
        None => EXACT,
        Some(Kind::F32x4) => 2,
        Some(Kind::F64x2) => 4,
        Some(Kind::F32 | Kind::F64) => EXACT,
    }
}

/// `func` rewritten: scalars as [`crate::canon`] does, vectors where observed.
pub(crate) fn rewrite<R: Reencode<Error = String> + ?Sized>(
    reencoder: &mut R,
    params: Option<u32>,
    mut validator: Validator,
    func: &wasmparser::FunctionBody<'_>,
) -> Result<Function, ReencodeError<String>> {
    let (locals, count) = body_locals(reencoder, params, func)?;
    let mut reader = func.get_locals_reader()?;
    for _ in 0..reader.get_count() {
        let offset = reader.original_position();
        let (n, ty) = reader.read()?;
        validator.define_locals(offset, n, ty)?;
    }
    // Parameters hold what the caller passed: exact.
    let mut sets: BTreeMap<u32, u8> = (0..params.unwrap_or(0)).map(|i| (i, EXACT)).collect();
    let mut carriers = BTreeMap::new();
    loop {
        let walked = walk(reencoder, func, validator.clone(), &carriers, None)?;
        for (local, bits) in walked {
            *sets.entry(local).or_default() |= bits;
        }
        let next: BTreeMap<u32, Kind> = sets
            .iter()
            .filter_map(|(&local, &bits)| match bits {
                2 => Some((local, Kind::F32x4)),
                4 => Some((local, Kind::F64x2)),
                _ => None,
            })
            .collect();
        if next == carriers {
            break;
        }
        carriers = next;
    }
    let mut emit = Emit {
        body: Vec::new(),
        locals,
        count,
        scratch: [None; 3],
        saves: Vec::new(),
    };
    walk(reencoder, func, validator, &carriers, Some(&mut emit))?;
    let mut f = Function::new(emit.locals);
    for instruction in &emit.body {
        f.instruction(instruction);
    }
    Ok(f)
}

/// The rewritten body as it is written.
struct Emit<'a> {
    body: Vec<Instruction<'a>>,
    locals: Locals,
    /// Locals the function has so far (the next scratch local's index).
    count: u32,
    /// [`canonicalize`]'s scratch locals.
    scratch: [Option<u32>; 3],
    /// Locals that hold the values above one being made canonical: (type, depth, local).
    saves: Vec<(ValType, usize, u32)>,
}

impl Emit<'_> {
    /// A scratch local of `ty` for the value at `depth`, declared the first time.
    fn save_slot(&mut self, ty: ValType, depth: usize) -> u32 {
        if let Some(&(_, _, local)) = self.saves.iter().find(|s| s.0 == ty && s.1 == depth) {
            return local;
        }
        let local = self.count;
        self.count = self.count.saturating_add(1);
        self.locals.push((1, ty));
        self.saves.push((ty, depth, local));
        local
    }

    fn canonicalize(&mut self, kind: Kind) {
        canonicalize(
            &mut self.body,
            kind,
            &mut self.scratch,
            &mut self.locals,
            &mut self.count,
        );
    }
}

/// Walks `func` with `carriers` carrying loose vectors, writing into `emit` when given;
/// returns what each local was set from.
fn walk<'a, R: Reencode<Error = String> + ?Sized>(
    reencoder: &mut R,
    func: &wasmparser::FunctionBody<'a>,
    mut v: Validator,
    carriers: &BTreeMap<u32, Kind>,
    mut emit: Option<&mut Emit<'a>>,
) -> Result<BTreeMap<u32, u8>, ReencodeError<String>> {
    let mut sets: BTreeMap<u32, u8> = BTreeMap::new();
    // The tag of every value on the operand stack, bottom first: `Some(kind)` for a loose vector.
    let mut tags: Vec<Option<Kind>> = Vec::new();
    let mut previous: Option<Operator<'a>> = None;
    let mut reader = func.get_operators_reader()?;
    while !reader.eof() {
        let offset = reader.original_position();
        let op = reader.read()?;
        let frame = v.get_control_frame(0);
        let live = frame.is_some_and(|f| !f.unreachable);
        let floor = frame.map_or(0, |f| f.height);
        let height = v.operand_stack_height() as usize;
        tags.resize(height, None);
        let in_frame = height.saturating_sub(floor);
        let tag = |depth: usize| {
            height
                .checked_sub(depth + 1)
                .and_then(|i| tags.get(i).copied())
                .flatten()
        };
        let (pops, pushes) = match op.operator_arity(&v) {
            Some((p, r)) => (p as usize, Some(r as usize)),
            None => (in_frame, None),
        };
        // The operands to make canonical first (depth, kind), and the result's tag.
        let mut fix: Vec<(usize, Kind)> = Vec::new();
        let mut made: Option<Kind> = None;
        // Whether a scalar operand goes in as it is, not made canonical first.
        let mut scalar_as_is = false;
        // A vector read as floats of `reads`: loose of another shape must be made canonical.
        let read_as = |depth: usize, reads: Kind, fix: &mut Vec<(usize, Kind)>| match tag(depth) {
            Some(kind) if kind != reads => {
                fix.push((depth, kind));
                None
            }
            loose => loose,
        };
        if live {
            match &op {
                Operator::Drop => {}
                Operator::LocalGet { local_index } => made = carriers.get(local_index).copied(),
                Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                    let value = tag(0);
                    *sets.entry(*local_index).or_default() |= bit(value);
                    if let Some(kind) = value {
                        if carriers.get(local_index) == Some(&kind) {
                            made = Some(kind);
                        } else {
                            fix.push((0, kind));
                        }
                    }
                }
                op => match lanes(op) {
                    Some(Lanes::Makes { reads, n, made: m }) => {
                        for depth in 0..n {
                            read_as(depth, reads, &mut fix);
                        }
                        made = Some(m);
                    }
                    Some(Lanes::Reads { reads, n }) => {
                        for depth in 0..n {
                            read_as(depth, reads, &mut fix);
                        }
                    }
                    Some(Lanes::Keeps { reads }) => made = read_as(0, reads, &mut fix),
                    Some(Lanes::Replaces { reads }) => {
                        made = read_as(1, reads, &mut fix);
                        scalar_as_is = made.is_some();
                    }
                    Some(Lanes::Splats { made: m }) => {
                        let scalar = match m {
                            Kind::F32x4 => Kind::F32,
                            _ => Kind::F64,
                        };
                        if !previous.as_ref().is_some_and(|p| verbatim(p, scalar)) {
                            made = Some(m);
                        }
                        scalar_as_is = true;
                    }
                    None => {
                        for depth in 0..pops.min(in_frame) {
                            if let Some(kind) = tag(depth) {
                                fix.push((depth, kind));
                            }
                        }
                    }
                },
            }
        }
        if let Some(emit) = emit.as_deref_mut() {
            make_canonical(reencoder, emit, &v, &fix)?;
            if let (Some(kind @ (Kind::F32 | Kind::F64)), _) = observes(&op)
                && !scalar_as_is
                && !previous.as_ref().is_some_and(|p| verbatim(p, kind))
            {
                emit.canonicalize(kind);
            }
            emit.body.push(reencoder.instruction(op.clone())?);
        }
        v.op(offset, &op)?;
        let after = v.operand_stack_height() as usize;
        let keep = height.saturating_sub(pops).min(after);
        tags.truncate(keep);
        tags.resize(after, None);
        if pushes == Some(1)
            && after == keep + 1
            && let Some(slot) = tags.get_mut(keep)
        {
            *slot = made;
        }
        previous = Some(op);
    }
    Ok(sets)
}

/// Writes what makes the operands at `fix`'s depths canonical, as their kinds: the values above
/// the deepest are put aside in scratch locals (each made canonical first if it is in `fix`),
/// the deepest is made canonical, and the others are put back.
fn make_canonical<R: Reencode<Error = String> + ?Sized>(
    reencoder: &mut R,
    emit: &mut Emit<'_>,
    v: &Validator,
    fix: &[(usize, Kind)],
) -> Result<(), ReencodeError<String>> {
    let Some(&(deepest, deepest_kind)) = fix.iter().max_by_key(|f| f.0) else {
        return Ok(());
    };
    let mut saved = Vec::new();
    for depth in 0..deepest {
        if let Some(&(_, kind)) = fix.iter().find(|f| f.0 == depth) {
            emit.canonicalize(kind);
        }
        let Some(Some(ty)) = v.get_operand_type(depth) else {
            return Err(ReencodeError::UserError(format!(
                "no type for the operand at depth {depth}"
            )));
        };
        let ty = reencoder.val_type(ty)?;
        let local = emit.save_slot(ty, depth);
        emit.body.push(Instruction::LocalSet(local));
        saved.push(local);
    }
    emit.canonicalize(deepest_kind);
    for local in saved.into_iter().rev() {
        emit.body.push(Instruction::LocalGet(local));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::canon::tests::wasmprinter_like;
    use crate::canon::{Vectors, canonicalize_observed_nans};

    fn rewritten(wat: &str) -> String {
        let wasm = wat::parse_str(wat).unwrap();
        let rewritten = canonicalize_observed_nans(&wasm, Vectors::WhereObserved).unwrap();
        let engine = wasmtime::Engine::new(&crate::sandbox::engine_config(
            crate::Profile::TrackedVectors,
        ))
        .unwrap();
        wasmtime::Module::validate(&engine, &rewritten).unwrap_or_else(|e| panic!("{e:#}"));
        wasmprinter_like(&rewritten)
    }

    #[test]
    fn an_accumulator_is_made_canonical_once_where_it_is_stored() {
        let text = rewritten(
            r#"(module (memory 1)
                 (func (param $p i32) (local $acc v128) (local $i i32)
                   (loop $l
                     (local.set $acc (f64x2.add (local.get $acc)
                       (f64x2.mul (v128.load (local.get $i)) (v128.load (local.get $p)))))
                     (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 16)))
                       (i32.const 1024))))
                   (v128.store (i32.const 0) (local.get $acc))))"#,
        );
        assert_eq!(text.matches("F64x2Ne").count(), 1, "{text}");
    }

    #[test]
    fn a_local_also_holding_integer_vectors_gets_canonical_ones() {
        let text = rewritten(
            r#"(module (memory 1)
                 (func (param $v v128) (local $x v128)
                   (local.set $x (local.get $v))
                   (local.set $x (f32x4.sqrt (local.get $x)))
                   (local.set $x (f32x4.mul (local.get $x) (local.get $x)))
                   (v128.store (i32.const 0) (local.get $x))))"#,
        );
        // Both sets of a loose vector into $x (which also holds the parameter) canonicalize;
        // the store does not need to.
        assert_eq!(text.matches("F32x4Ne").count(), 2, "{text}");
    }

    #[test]
    fn control_flow_calls_selects_and_unreachable_code_rewrite_to_valid_modules() {
        // Vectors as block parameters and results, branch values, br_table, select, a call
        // argument, a global, exceptions, and float vector code after `unreachable`.
        let text = rewritten(
            r#"(module (memory 1) (global $g (mut v128) (v128.const i64x2 0 0))
                 (tag $t (param v128))
                 (func $f (param v128) (result v128) (local.get 0))
                 (func (param $c i32) (param $a v128) (result v128) (local $l v128)
                   (local.set $l (f32x4.add (local.get $a) (local.get $a)))
                   (global.set $g (f64x2.mul (local.get $a) (local.get $a)))
                   (drop (call $f (f32x4.div (local.get $a) (local.get $a))))
                   (f64x2.mul (local.get $a) (local.get $a))
                   (block $b (param v128) (result v128)
                     (f64x2.sqrt)
                     (br_if $b (local.get $c))
                     (br_table $b $b (local.get $c)))
                   (drop)
                   (drop (select (result v128) (local.get $l) (f64x2.floor (local.get $a))
                     (local.get $c)))
                   (drop (try_table (result v128) (catch $t 0)
                     (throw $t (f32x4.nearest (local.get $a)))))
                   (i32x4.add (local.get $a) (f64x2.div (local.get $a) (local.get $a)))
                   (if (local.get $c) (then (unreachable) (drop (f64x2.add)) (drop)))
                   (return (f32x4.min (local.get $l) (local.get $a)))))"#,
        );
        assert!(text.contains("F64x2Ne"), "{text}");
        assert!(text.contains("F32x4Ne"), "{text}");
    }
}
