//! NaN canonicalization where a NaN's bits become observable (profile 2, see [`crate::Profile`]).
//!
//! WebAssembly leaves one thing about floating point to the machine: the sign and payload bits
//! of a NaN that an arithmetic instruction produces (x86 and ARM differ). Every other result is
//! exact IEEE 754, and a NaN is a NaN everywhere, so those bits only matter where a program can
//! *see* them. Cranelift's `enable_nan_canonicalization` (profile 1) rewrites every float
//! instruction's result instead, which costs up to 9x on float-heavy loops (`gridmint bench
//! --only kernels`). This module rewrites a module before it is compiled so that a NaN is made
//! canonical (the positive quiet NaN with an empty payload, the one Cranelift uses) only where
//! its bits can leave the float domain:
//!
//! - a scalar stored to memory (`f32.store`, `f64.store`), reinterpreted as an integer
//!   (`i32.reinterpret_f32`, `i64.reinterpret_f64`), taken as the sign operand of `copysign`, or
//!   put into a vector (`f32x4.splat`, `f64x2.splat`, `f32x4.replace_lane`,
//!   `f64x2.replace_lane`): the scalar is canonicalized first;
//! - a vector result of a float SIMD instruction that can make a NaN (arithmetic, `sqrt`,
//!   `min`/`max`, rounding, `demote`/`promote`): canonicalized at once, as Cranelift does,
//!   since a `v128` is plain bits to every integer instruction that may follow.
//!
//! Nothing else reveals a NaN's bits: comparisons, `trunc_sat` and branches see only that it
//! is a NaN; `abs`, `neg`, `copysign` and `select` move bits without making them up (from
//! inputs that are themselves deterministic); locals, globals, calls, returns and exceptions
//! inside the module carry values to one of the points above; the sandbox's imports take no
//! floats and its entries return none. A value stored straight after it was loaded or written as
//! a constant (`f64.load` then `f64.store`: a copy) is left alone: its bits came from memory or
//! the module, not from the machine.
//!
//! The inserted instructions are ordinary wasm, so they are metered like the guest's own: fuel
//! under profile 2 differs from profile 1 for a module that stores floats, which is why the
//! profile is part of the network's rules and never mixed within one network.

use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{CodeSection, Function, Ieee32, Ieee64, Instruction, ValType};
use wasmparser::{CompositeInnerType, Operator, Parser, Payload};

/// The canonical NaN of `f32` (positive, quiet, empty payload).
const CANONICAL_F32: u32 = 0x7fc0_0000;
/// The canonical NaN of `f64`.
const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;
/// Four canonical `f32` NaNs, as a `v128.const`.
const CANONICAL_F32X4: i128 = 0x7fc0_0000_7fc0_0000_7fc0_0000_7fc0_0000;
/// Two canonical `f64` NaNs, as a `v128.const`.
const CANONICAL_F64X2: i128 = 0x7ff8_0000_0000_0000_7ff8_0000_0000_0000;

/// Where the results of float SIMD instructions are made canonical.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Vectors {
    /// After every float SIMD instruction that can make a NaN (profiles 2 and 3).
    AtOnce,
    /// Only where a vector's bits are read other than as floats of the lane shape that made
    /// them (profile 4, [`crate::lanes`]).
    WhereObserved,
}

/// `wasm` (a valid module) with NaNs canonicalized wherever their bits become observable.
/// `Err` only for a module wasmparser cannot read.
pub(crate) fn canonicalize_observed_nans(wasm: &[u8], vectors: Vectors) -> Result<Vec<u8>, String> {
    let params = defined_function_params(wasm)?;
    let validators = match vectors {
        Vectors::AtOnce => None,
        Vectors::WhereObserved => Some(crate::lanes::function_validators(wasm)?),
    };
    let mut rewriter = Rewriter {
        params,
        next: 0,
        validators,
    };
    let mut module = wasm_encoder::Module::new();
    rewriter
        .parse_core_module(&mut module, Parser::new(0), wasm)
        .map_err(|e| format!("cannot rewrite the module's float code: {e:?}"))?;
    Ok(module.finish())
}

/// The number of parameters of each function the module defines, in code-section order (the
/// scratch locals a rewritten body declares come after its parameters and its own locals).
pub(crate) fn defined_function_params(wasm: &[u8]) -> Result<Vec<u32>, String> {
    let mut types: Vec<Option<u32>> = Vec::new();
    let mut params = Vec::new();
    let err = |e: wasmparser::BinaryReaderError| format!("cannot read the module: {e}");
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(err)? {
            Payload::TypeSection(reader) => {
                for group in reader {
                    for sub in group.map_err(err)?.into_types() {
                        types.push(match &sub.composite_type.inner {
                            CompositeInnerType::Func(f) => {
                                Some(u32::try_from(f.params().len()).unwrap_or(u32::MAX))
                            }
                            _ => None,
                        });
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for ty in reader {
                    let ty = ty.map_err(err)?;
                    let count = types
                        .get(ty as usize)
                        .copied()
                        .flatten()
                        .ok_or_else(|| format!("function type {ty} is not a function type"))?;
                    params.push(count);
                }
            }
            _ => {}
        }
    }
    Ok(params)
}

/// A body's local declarations: (count, type) runs.
pub(crate) type Locals = Vec<(u32, ValType)>;

/// The locals `func` declares, re-encoded, and how many locals it has with its `params`
/// parameters (the index of the first scratch local a rewrite may add); `params` is `None` for
/// a body beyond the module's function section.
pub(crate) fn body_locals<R: Reencode<Error = String> + ?Sized>(
    reencoder: &mut R,
    params: Option<u32>,
    func: &wasmparser::FunctionBody<'_>,
) -> Result<(Locals, u32), ReencodeError<String>> {
    let mut count =
        params.ok_or_else(|| ReencodeError::UserError("more bodies than functions".into()))?;
    let mut locals = Vec::new();
    for pair in func.get_locals_reader()? {
        let (n, ty) = pair?;
        count = count.saturating_add(n);
        locals.push((n, reencoder.val_type(ty)?));
    }
    Ok((locals, count))
}

/// The scalar or vector kind a canonicalization is for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    F32,
    F64,
    F32x4,
    F64x2,
}

impl Kind {
    /// The scratch local's type.
    fn val_type(self) -> ValType {
        match self {
            Kind::F32 => ValType::F32,
            Kind::F64 => ValType::F64,
            Kind::F32x4 | Kind::F64x2 => ValType::V128,
        }
    }

    /// The scratch slot: scalar kinds one each, both vector kinds share a `v128`.
    fn slot(self) -> usize {
        match self {
            Kind::F32 => 0,
            Kind::F64 => 1,
            Kind::F32x4 | Kind::F64x2 => 2,
        }
    }
}

/// The value an operator must have canonicalized before it runs (the one on top of the stack),
/// and the kind of a vector result it must have canonicalized after.
pub(crate) fn observes(op: &Operator<'_>) -> (Option<Kind>, Option<Kind>) {
    use Operator as O;
    match op {
        O::F32Store { .. }
        | O::I32ReinterpretF32
        | O::F32Copysign
        | O::F32x4Splat
        | O::F32x4ReplaceLane { .. } => (Some(Kind::F32), None),
        O::F64Store { .. }
        | O::I64ReinterpretF64
        | O::F64Copysign
        | O::F64x2Splat
        | O::F64x2ReplaceLane { .. } => (Some(Kind::F64), None),
        O::F32x4Add
        | O::F32x4Sub
        | O::F32x4Mul
        | O::F32x4Div
        | O::F32x4Sqrt
        | O::F32x4Min
        | O::F32x4Max
        | O::F32x4Ceil
        | O::F32x4Floor
        | O::F32x4Trunc
        | O::F32x4Nearest
        | O::F32x4DemoteF64x2Zero => (None, Some(Kind::F32x4)),
        O::F64x2Add
        | O::F64x2Sub
        | O::F64x2Mul
        | O::F64x2Div
        | O::F64x2Sqrt
        | O::F64x2Min
        | O::F64x2Max
        | O::F64x2Ceil
        | O::F64x2Floor
        | O::F64x2Trunc
        | O::F64x2Nearest
        | O::F64x2PromoteLowF32x4 => (None, Some(Kind::F64x2)),
        _ => (None, None),
    }
}

/// Whether `op` leaves a value whose bits came from memory or the module itself, never from an
/// arithmetic instruction of this machine.
pub(crate) fn verbatim(op: &Operator<'_>, kind: Kind) -> bool {
    match kind {
        Kind::F32 => matches!(op, Operator::F32Load { .. } | Operator::F32Const { .. }),
        Kind::F64 => matches!(op, Operator::F64Load { .. } | Operator::F64Const { .. }),
        Kind::F32x4 | Kind::F64x2 => false,
    }
}

struct Rewriter {
    /// Parameters of each defined function, in code-section order.
    params: Vec<u32>,
    /// The defined function whose body comes next.
    next: usize,
    /// Under [`Vectors::WhereObserved`], a validator for each defined function, in code-section
    /// order, to follow the operand stack with.
    validators: Option<Vec<crate::lanes::Validator>>,
}

impl Reencode for Rewriter {
    type Error = String;

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: wasmparser::FunctionBody<'_>,
    ) -> Result<(), ReencodeError<String>> {
        let params = self.params.get(self.next).copied();
        let validator = self.validators.as_ref().map(|v| v.get(self.next).cloned());
        self.next += 1;
        if let Some(validator) = validator {
            let validator = validator
                .ok_or_else(|| ReencodeError::UserError("more bodies than functions".into()))?;
            if crate::lanes::makes_float_vectors(&func)? {
                let f = crate::lanes::rewrite(self, params, validator, &func)?;
                code.function(&f);
                return Ok(());
            }
        }
        let (mut locals, mut count) = body_locals(self, params, &func)?;
        // The scratch locals, numbered after the body's own, declared only if used.
        let mut scratch: [Option<u32>; 3] = [None; 3];
        let mut body: Vec<Instruction<'_>> = Vec::new();
        let mut previous: Option<Operator<'_>> = None;
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            let (before, after) = observes(&op);
            if let Some(kind) = before
                && !previous.as_ref().is_some_and(|p| verbatim(p, kind))
            {
                canonicalize(&mut body, kind, &mut scratch, &mut locals, &mut count);
            }
            body.push(self.instruction(op.clone())?);
            if let Some(kind) = after {
                canonicalize(&mut body, kind, &mut scratch, &mut locals, &mut count);
            }
            previous = Some(op);
        }
        let mut f = Function::new(locals);
        for instruction in &body {
            f.instruction(instruction);
        }
        code.function(&f);
        Ok(())
    }
}

/// Appends the instructions that replace the value of `kind` on top of the stack by the
/// canonical NaN if it is a NaN (lane by lane for a vector), declaring its scratch local the
/// first time.
pub(crate) fn canonicalize(
    body: &mut Vec<Instruction<'_>>,
    kind: Kind,
    scratch: &mut [Option<u32>; 3],
    locals: &mut Vec<(u32, ValType)>,
    count: &mut u32,
) {
    let local = match scratch[kind.slot()] {
        Some(local) => local,
        None => {
            let local = *count;
            *count = count.saturating_add(1);
            locals.push((1, kind.val_type()));
            scratch[kind.slot()] = Some(local);
            local
        }
    };
    // select(canonical, x, x != x), or bitselect(canonical, x, x != x) lane by lane.
    let (canonical, ne, pick) = match kind {
        Kind::F32 => (
            Instruction::F32Const(Ieee32::new(CANONICAL_F32)),
            Instruction::F32Ne,
            Instruction::Select,
        ),
        Kind::F64 => (
            Instruction::F64Const(Ieee64::new(CANONICAL_F64)),
            Instruction::F64Ne,
            Instruction::Select,
        ),
        Kind::F32x4 => (
            Instruction::V128Const(CANONICAL_F32X4),
            Instruction::F32x4Ne,
            Instruction::V128Bitselect,
        ),
        Kind::F64x2 => (
            Instruction::V128Const(CANONICAL_F64X2),
            Instruction::F64x2Ne,
            Instruction::V128Bitselect,
        ),
    };
    body.extend([
        Instruction::LocalSet(local),
        canonical,
        Instruction::LocalGet(local),
        Instruction::LocalGet(local),
        Instruction::LocalGet(local),
        ne,
        pick,
    ]);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Profile;

    fn engine() -> wasmtime::Engine {
        wasmtime::Engine::new(&crate::sandbox::engine_config(Profile::ObservedNans)).unwrap()
    }

    /// Every committed guest's path and bytes (`guests/*.wasm`, `guests/kernels/*.wasm`).
    pub(crate) fn committed_guests() -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        let mut guests = Vec::new();
        for dir in [root.clone(), root.join("kernels")] {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "wasm") {
                    let wasm = std::fs::read(&path).unwrap();
                    guests.push((path, wasm));
                }
            }
        }
        assert!(guests.len() >= 20, "only {} guests found", guests.len());
        guests
    }

    /// Every committed guest (C programs, the kernels) still validates once rewritten, and the
    /// rewrite touched the float code of those that store floats.
    #[test]
    fn every_committed_guest_validates_once_rewritten() {
        let engine = engine();
        for (path, wasm) in committed_guests() {
            for vectors in [Vectors::AtOnce, Vectors::WhereObserved] {
                let rewritten = canonicalize_observed_nans(&wasm, vectors).unwrap();
                wasmtime::Module::validate(&engine, &rewritten)
                    .unwrap_or_else(|e| panic!("{} ({vectors:?}): {e:#}", path.display()));
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guests");
        let nbody = std::fs::read(root.join("kernels/nbody.wasm")).unwrap();
        let ne = |wasm: &[u8]| wasmprinter_like(wasm).matches("F64Ne").count();
        assert!(
            ne(&canonicalize_observed_nans(&nbody, Vectors::AtOnce).unwrap()) > ne(&nbody),
            "nbody's float stores were not canonicalized"
        );
    }

    #[test]
    fn integer_code_is_left_as_it_was() {
        let wasm = wat::parse_str(
            r#"(module (memory 1)
                 (func (export "f") (param i32) (result i32) (local i64)
                   (i64.store (i32.const 0) (i64.extend_i32_u (local.get 0)))
                   (i32.add (local.get 0) (i32.const 1))))"#,
        )
        .unwrap();
        let rewritten = canonicalize_observed_nans(&wasm, Vectors::AtOnce).unwrap();
        assert_eq!(rewritten, wasm);
    }

    #[test]
    fn a_store_gets_one_scratch_local_after_the_functions_own() {
        let wasm = wat::parse_str(
            r#"(module (memory 1)
                 (func (param f64 f64) (local i32 i32)
                   (f64.store (i32.const 0) (f64.div (local.get 0) (local.get 1)))
                   (f64.store (i32.const 8) (f64.mul (local.get 0) (local.get 1)))
                   (f64.store (i32.const 16) (f64.load (i32.const 0)))))"#,
        )
        .unwrap();
        let rewritten = canonicalize_observed_nans(&wasm, Vectors::AtOnce).unwrap();
        let text = wasmprinter_like(&rewritten);
        // Two canonicalizations (the copy is left alone), both through local 4.
        assert_eq!(
            text.matches("LocalSet { local_index: 4 }").count(),
            2,
            "{text}"
        );
        assert_eq!(text.matches("F64Ne").count(), 2, "{text}");
        wasmtime::Module::validate(&engine(), &rewritten).unwrap();
    }

    /// The operators of every body, one per line (wasmparser's `Debug`).
    pub(crate) fn wasmprinter_like(wasm: &[u8]) -> String {
        let mut out = String::new();
        for payload in Parser::new(0).parse_all(wasm) {
            if let Payload::CodeSectionEntry(body) = payload.unwrap() {
                let mut reader = body.get_operators_reader().unwrap();
                while !reader.eof() {
                    out.push_str(&format!("{:?}\n", reader.read().unwrap()));
                }
            }
        }
        out
    }
}
