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
//! loose vector keeps it loose (into an exact one, the scalar is made canonical first; a scalar
//! just loaded goes into a vector made canonical first, so that its bits are kept).
//!
//! Locals: a `v128` local that every `local.set` and `local.tee` of the function fills with a
//! loose vector of one shape (never an exact one, never a parameter) carries it loose
//! everywhere, so a vector accumulated in a loop is made canonical once, where it is stored.
//! Which locals carry is found by walking the function until nothing changes (what a local is
//! set from only grows, so the walk ends), then once more to write it. Any other local holds a
//! loose vector from a set to the next point where control may merge — a loop's header, past
//! a block's `end`, an `if` without `else` — where it may hold an exact vector from another
//! way in (compilers reuse a local for integer vectors in one loop and float ones in the
//! next): there it is made canonical, on every branch to that point and where control falls
//! into it, unless it is written before anything reads it from that point on (looked at as far
//! as the straight line goes). Inside `try_table` a handler may be entered at any call, so a
//! loose vector put into such a local is made canonical at once. Unreachable code is left as it
//! is.

use std::collections::{BTreeMap, BTreeSet};

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
    let mut body = Body::read(func)?;
    // Parameters hold what the caller passed: exact.
    let mut sets: BTreeMap<u32, u8> = (0..params.unwrap_or(0)).map(|i| (i, EXACT)).collect();
    let mut carriers = BTreeMap::new();
    for walks in 1.. {
        if walks > MAX_CARRIER_WALKS {
            carriers.clear();
            break;
        }
        let walked = walk(reencoder, &mut body, validator.clone(), &carriers, None)?;
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
    walk(reencoder, &mut body, validator, &carriers, Some(&mut emit))?;
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

    /// Makes the vector in `local` canonical as `kind`.
    fn canonicalize_local(&mut self, local: u32, kind: Kind) {
        self.body.push(Instruction::LocalGet(local));
        self.canonicalize(kind);
        self.body.push(Instruction::LocalSet(local));
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

/// A function's operators, where each block ends, and which locals are written before they are
/// read from a point on.
struct Body<'a> {
    ops: Vec<(usize, Operator<'a>)>,
    /// For the operator at each index that opens a block, loop, `if` or `try_table`, the index
    /// of its `end`.
    ends: BTreeMap<usize, usize>,
    /// [`Body::dead_at`], by index.
    dead: BTreeMap<usize, BTreeSet<u32>>,
    /// How many more operators [`Body::dead_at`] may look at, for the whole function: a module
    /// with many blocks cannot make its rewrite quadratic.
    budget: usize,
}

/// How far [`Body::dead_at`] looks ahead from one point.
const LIVENESS_SCAN: usize = 10_000;
/// [`Body::budget`]: this many operators, plus this many times the function's.
const LIVENESS_BUDGET: usize = 100_000;
const LIVENESS_BUDGET_PER_OP: usize = 4;
/// Most walks to find the locals that carry loose vectors; past them, none does (every local
/// is followed through control flow instead, which is always sound).
const MAX_CARRIER_WALKS: usize = 8;

impl<'a> Body<'a> {
    fn read(func: &wasmparser::FunctionBody<'a>) -> Result<Body<'a>, ReencodeError<String>> {
        let mut ops = Vec::new();
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let offset = reader.original_position();
            ops.push((offset, reader.read()?));
        }
        let mut ends = BTreeMap::new();
        let mut open = Vec::new();
        for (i, (_, op)) in ops.iter().enumerate() {
            match op {
                Operator::Block { .. }
                | Operator::Loop { .. }
                | Operator::If { .. }
                | Operator::TryTable { .. }
                | Operator::Try { .. } => open.push(i),
                Operator::End | Operator::Delegate { .. } => {
                    if let Some(start) = open.pop() {
                        ends.insert(start, i);
                    }
                }
                _ => {}
            }
        }
        let budget = ops
            .len()
            .saturating_mul(LIVENESS_BUDGET_PER_OP)
            .saturating_add(LIVENESS_BUDGET);
        Ok(Body {
            ops,
            ends,
            dead: BTreeMap::new(),
            budget,
        })
    }

    /// The locals that, from the operator at `at` on, are certainly written (at the level of
    /// `at`'s block) before anything reads them or control leaves that straight line: their
    /// value there is never read. Others count as read (all of them once the function's budget
    /// is spent).
    fn dead_at(&mut self, at: usize) -> &BTreeSet<u32> {
        let ops = &self.ops;
        let budget = &mut self.budget;
        self.dead.entry(at).or_insert_with(|| {
            let mut dead = BTreeSet::new();
            let mut read = BTreeSet::new();
            let mut depth = 0usize;
            let look = LIVENESS_SCAN.min(*budget);
            for (_, op) in ops.iter().skip(at).take(look) {
                *budget = budget.saturating_sub(1);
                match op {
                    Operator::LocalGet { local_index } if !dead.contains(local_index) => {
                        read.insert(*local_index);
                    }
                    Operator::LocalSet { local_index } | Operator::LocalTee { local_index }
                        if depth == 0 && !read.contains(local_index) =>
                    {
                        dead.insert(*local_index);
                    }
                    Operator::Block { .. }
                    | Operator::Loop { .. }
                    | Operator::If { .. }
                    | Operator::TryTable { .. }
                    | Operator::Try { .. } => depth += 1,
                    Operator::End | Operator::Delegate { .. } => match depth.checked_sub(1) {
                        Some(d) => depth = d,
                        None => break,
                    },
                    Operator::Else | Operator::Catch { .. } | Operator::CatchAll if depth == 0 => {
                        break;
                    }
                    op if branches(op) => break,
                    _ => {}
                }
            }
            dead
        })
    }
}

/// Whether `op` may send control anywhere but to the next operator, other than by entering or
/// leaving a block in order.
fn branches(op: &Operator<'_>) -> bool {
    matches!(
        op,
        Operator::Br { .. }
            | Operator::BrIf { .. }
            | Operator::BrTable { .. }
            | Operator::BrOnNull { .. }
            | Operator::BrOnNonNull { .. }
            | Operator::BrOnCast { .. }
            | Operator::BrOnCastFail { .. }
            | Operator::Return
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. }
            | Operator::Unreachable
            | Operator::Throw { .. }
            | Operator::ThrowRef
            | Operator::Rethrow { .. }
    )
}

/// A block being walked: what kind, and where a branch to it goes.
#[derive(Clone, Debug)]
struct Frame {
    kind: FrameKind,
    /// The index of the operator a branch to this block continues at (a loop's first, past
    /// another block's `end`); `None` for the function (a branch to it returns).
    target: Option<usize>,
    /// Under an `if`, the loose locals when it was entered (for its `else`).
    entered: BTreeMap<u32, Kind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameKind {
    Function,
    Block,
    Loop,
    If,
    /// `try_table` (or a legacy `try`): an exception thrown inside may land on a handler at
    /// any call, so no local is loose inside.
    Try,
}

/// Walks `body` with `carriers` carrying loose vectors, writing into `emit` when given;
/// returns what each local was set from. Another `v128` local holds a loose vector only
/// between a set and the next point where control may merge (a loop's header, past a block's
/// `end`), where it is made canonical if it may be read there: on the branches to it, and where
/// control falls into it.
fn walk<'a, R: Reencode<Error = String> + ?Sized>(
    reencoder: &mut R,
    body: &mut Body<'a>,
    mut v: Validator,
    carriers: &BTreeMap<u32, Kind>,
    mut emit: Option<&mut Emit<'a>>,
) -> Result<BTreeMap<u32, u8>, ReencodeError<String>> {
    let mut sets: BTreeMap<u32, u8> = BTreeMap::new();
    // The tag of every value on the operand stack, bottom first: `Some(kind)` for a loose vector.
    let mut tags: Vec<Option<Kind>> = Vec::new();
    // Locals other than carriers that hold a loose vector here.
    let mut loose: BTreeMap<u32, Kind> = BTreeMap::new();
    let mut frames = vec![Frame {
        kind: FrameKind::Function,
        target: None,
        entered: BTreeMap::new(),
    }];
    let mut previous: Option<Operator<'a>> = None;
    for index in 0..body.ops.len() {
        let Some((offset, op)) = body.ops.get(index).cloned() else {
            break;
        };
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
        let in_try = frames.iter().any(|f| f.kind == FrameKind::Try);
        // The operands to make canonical first (depth, kind), and the result's tag.
        let mut fix: Vec<(usize, Kind)> = Vec::new();
        // Loose locals to make canonical first.
        let mut settle: Vec<u32> = Vec::new();
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
        // The loose locals that may be read where a branch to the frame `depth` out lands.
        let read_at = |body: &mut Body<'_>, depth: u32, loose: &BTreeMap<u32, Kind>| {
            let target = frames
                .len()
                .checked_sub(1 + depth as usize)
                .and_then(|i| frames.get(i))
                .and_then(|f| f.target);
            match target {
                Some(at) => {
                    let dead = body.dead_at(at);
                    loose
                        .keys()
                        .filter(|l| !dead.contains(l))
                        .copied()
                        .collect::<Vec<_>>()
                }
                None => Vec::new(),
            }
        };
        if live {
            match &op {
                Operator::Drop => {}
                Operator::LocalGet { local_index } => {
                    made = carriers
                        .get(local_index)
                        .or_else(|| loose.get(local_index))
                        .copied();
                }
                Operator::LocalSet { local_index } | Operator::LocalTee { local_index } => {
                    let value = tag(0);
                    *sets.entry(*local_index).or_default() |= bit(value);
                    loose.remove(local_index);
                    if let Some(kind) = value {
                        if carriers.get(local_index) == Some(&kind) {
                            made = Some(kind);
                        } else if in_try {
                            fix.push((0, kind));
                        } else {
                            loose.insert(*local_index, kind);
                            made = Some(kind);
                        }
                    }
                }
                Operator::Br { relative_depth } | Operator::BrIf { relative_depth } => {
                    settle = read_at(body, *relative_depth, &loose);
                }
                Operator::BrTable { targets } => {
                    let mut all = BTreeSet::new();
                    for depth in targets
                        .targets()
                        .chain(std::iter::once(Ok(targets.default())))
                    {
                        all.extend(read_at(body, depth?, &loose));
                    }
                    settle = all.into_iter().collect();
                }
                Operator::Loop { .. } => {
                    let dead = body.dead_at(index + 1);
                    settle = loose
                        .keys()
                        .filter(|l| !dead.contains(l))
                        .copied()
                        .collect();
                }
                Operator::If { .. } | Operator::Else | Operator::End => {
                    // Where control falls through to past the `end` of this `if` (or, at an
                    // `if`, may go straight there when it has no `else`).
                    let past = match &op {
                        Operator::If { .. } => body.ends.get(&index).map(|e| e + 1),
                        _ => frames
                            .last()
                            .filter(|f| f.kind != FrameKind::Loop)
                            .and_then(|f| f.target),
                    };
                    if let Some(at) = past {
                        let dead = body.dead_at(at);
                        settle = loose
                            .keys()
                            .filter(|l| !dead.contains(l))
                            .copied()
                            .collect();
                    }
                }
                Operator::TryTable { .. } | Operator::Try { .. } => {
                    settle = loose.keys().copied().collect();
                }
                op if branches(op) && !matches!(op, Operator::Return | Operator::Unreachable) => {
                    settle = loose.keys().copied().collect();
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
                        let scalar = match reads {
                            Kind::F32x4 => Kind::F32,
                            _ => Kind::F64,
                        };
                        made = read_as(1, reads, &mut fix);
                        if previous.as_ref().is_some_and(|p| verbatim(p, scalar)) {
                            // A scalar just loaded keeps its bits in the vector: the vector is
                            // made canonical first, and is exact.
                            if let Some(kind) = made.take() {
                                fix.push((1, kind));
                            }
                        } else {
                            scalar_as_is = made.is_some();
                        }
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
                    None => {}
                },
            }
            // Whatever pops a loose vector it does not read as floats of its shape.
            if lanes(&op).is_none()
                && !matches!(
                    op,
                    Operator::Drop | Operator::LocalSet { .. } | Operator::LocalTee { .. }
                )
            {
                for depth in 0..pops.min(in_frame) {
                    if let Some(kind) = tag(depth) {
                        fix.push((depth, kind));
                    }
                }
            }
        }
        if let Some(emit) = emit.as_deref_mut() {
            for local in &settle {
                if let Some(&kind) = loose.get(local) {
                    emit.canonicalize_local(*local, kind);
                }
            }
            make_canonical(reencoder, emit, &v, &fix)?;
            if let (Some(kind @ (Kind::F32 | Kind::F64)), _) = observes(&op)
                && !scalar_as_is
                && !previous.as_ref().is_some_and(|p| verbatim(p, kind))
            {
                emit.canonicalize(kind);
            }
            emit.body.push(reencoder.instruction(op.clone())?);
        }
        for local in &settle {
            loose.remove(local);
        }
        // The blocks, and the loose locals where control merges.
        match &op {
            Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } => {
                let kind = match &op {
                    Operator::Block { .. } => FrameKind::Block,
                    Operator::If { .. } => FrameKind::If,
                    _ => FrameKind::Try,
                };
                if kind == FrameKind::Try {
                    loose.clear();
                }
                frames.push(Frame {
                    kind,
                    target: body.ends.get(&index).map(|e| e + 1),
                    entered: loose.clone(),
                });
            }
            Operator::Try { .. } => {
                loose.clear();
                frames.push(Frame {
                    kind: FrameKind::Try,
                    target: body.ends.get(&index).map(|e| e + 1),
                    entered: BTreeMap::new(),
                });
            }
            Operator::Loop { .. } => {
                // At the header: what may be read there was made canonical on the way in and
                // on every branch back; the rest is written before it is read.
                frames.push(Frame {
                    kind: FrameKind::Loop,
                    target: Some(index + 1),
                    entered: BTreeMap::new(),
                });
            }
            Operator::Else => {
                if let Some(frame) = frames.last() {
                    loose = frame.entered.clone();
                }
            }
            Operator::End | Operator::Delegate { .. } => {
                if let Some(frame) = frames.pop()
                    && frame.kind != FrameKind::Loop
                {
                    // Past a merge, what may be read was made canonical on every way in.
                    loose.clear();
                }
            }
            _ => {}
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
        rewritten_binary(&wat::parse_str(wat).unwrap())
    }

    /// `wasm` rewritten under profile 4 and validated, its operators one per line.
    fn rewritten_binary(wasm: &[u8]) -> String {
        let rewritten = canonicalize_observed_nans(wasm, Vectors::WhereObserved).unwrap();
        let engine = wasmtime::Engine::new(&crate::sandbox::engine_config(
            crate::Profile::TrackedVectors,
        ))
        .unwrap();
        wasmtime::Module::validate(&engine, &rewritten).unwrap_or_else(|e| panic!("{e:#}"));
        wasmprinter_like(&rewritten)
    }

    /// Functions (after a memory) and how many canonicalizations of a kind each gets.
    const COUNTED: [(&str, &str, &str, usize); 3] = [
        (
            "an accumulator is made canonical once, where it is stored",
            r#"(func (param $p i32) (local $acc v128) (local $i i32)
                 (loop $l
                   (local.set $acc (f64x2.add (local.get $acc)
                     (f64x2.mul (v128.load (local.get $i)) (v128.load (local.get $p)))))
                   (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 16)))
                     (i32.const 1024))))
                 (v128.store (i32.const 0) (local.get $acc)))"#,
            "F64x2Ne",
            1,
        ),
        (
            // $x also holds the parameter, so it carries nothing, but between its sets it holds
            // a loose vector: made canonical once, at the store.
            "a local also holding an exact vector is made canonical where it is observed",
            r#"(func (param $v v128) (local $x v128)
                 (local.set $x (local.get $v))
                 (local.set $x (f32x4.sqrt (local.get $x)))
                 (local.set $x (f32x4.mul (local.get $x) (local.get $x)))
                 (v128.store (i32.const 0) (local.get $x)))"#,
            "F32x4Ne",
            1,
        ),
        (
            // $t and $acc also hold integer vectors before the loop (as a compiler reuses
            // locals); in the loop $t is written before it is read, so it is left loose at the
            // branch back, and $acc, read at the header, is made canonical there (where the loop
            // is entered it holds an exact vector): once per iteration instead of once per set,
            // and at the store of $t; nothing after the loop ($acc is exact past the branch).
            "a local used for integers elsewhere stays loose in a float loop",
            r#"(func (param $p i32) (local $t v128) (local $acc v128) (local $i i32)
                 (local.set $t (i64x2.splat (i64.const 1)))
                 (local.set $acc (i32x4.add (local.get $t) (local.get $t)))
                 (v128.store (i32.const 0) (local.get $acc))
                 (loop $l
                   (local.set $t (f64x2.mul (v128.load (local.get $i)) (v128.load (local.get $p))))
                   (local.set $acc (f64x2.add (local.get $acc) (local.get $t)))
                   (local.set $t (f64x2.sub (local.get $t) (local.get $acc)))
                   (v128.store (local.get $i) (local.get $t))
                   (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 16)))
                     (i32.const 1024))))
                 (v128.store (i32.const 0) (local.get $acc)))"#,
            "F64x2Ne",
            2,
        ),
    ];

    #[test]
    fn canonicalizations_are_where_vectors_are_observed() {
        for (what, func, ne, count) in COUNTED {
            let text = rewritten(&format!("(module (memory 1) {func})"));
            assert_eq!(text.matches(ne).count(), count, "{what}:\n{text}");
        }
    }

    #[test]
    fn many_merges_spend_the_liveness_budget_and_stay_sound() {
        // 40,000 blocks after a loose vector is put into a local that also holds an exact one:
        // looking ahead from every `end` would be quadratic; past the budget every local counts
        // as read, so the vector is made canonical at the first merge it crosses.
        let blocks = "(block (nop))".repeat(40_000);
        let wasm = wat::parse_str(format!(
            r#"(module (memory 1)
                 (func (param $v v128) (local $x v128)
                   (local.set $x (local.get $v))
                   (local.set $x (f64x2.sqrt (local.get $x)))
                   {blocks}
                   (v128.store (i32.const 0) (local.get $x))))"#
        ))
        .unwrap();
        let func = wasmparser::Parser::new(0)
            .parse_all(&wasm)
            .find_map(|p| match p.unwrap() {
                wasmparser::Payload::CodeSectionEntry(body) => Some(body),
                _ => None,
            })
            .unwrap();
        let mut body = super::Body::read(&func).unwrap();
        let ops = body.ops.len();
        for at in 0..ops {
            body.dead_at(at);
        }
        assert_eq!(body.budget, 0, "{ops} operators");
        let text = rewritten_binary(&wasm);
        assert_eq!(text.matches("F64x2Ne").count(), 1);
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
